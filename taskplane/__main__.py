"""``python -m taskplane`` and the ``taskplane`` console script."""

from __future__ import annotations

import sys

from taskplane.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

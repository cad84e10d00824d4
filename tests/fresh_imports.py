"""What a fresh interpreter has imported after importing some modules (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys

__all__ = ["modules_after"]


def modules_after(*modules: str) -> set[str]:
    """The names in ``sys.modules`` of a new ``python`` (this one) once it imported ``modules``."""
    imports = "".join(f"import {module};" for module in modules)
    code = f"import json, sys;{imports}print(json.dumps(list(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))

"""The one logger naming scheme: every logger of the project lives under ``taskplane``.

An embedder configures the whole project with ``logging.getLogger("taskplane")``. A module
names its logger after its own dotted path: ``get_logger(__name__)`` in ``runtime_v2/shim.py``
is ``taskplane.runtime_v2.shim``; in ``taskplane/containers.py`` it is ``taskplane.containers``.
A logger for something a module relays (a shim's own stderr) is a child of the module's logger.
"""

from __future__ import annotations

import logging

__all__ = ["ROOT", "get_logger"]

#: The name of the project's root logger.
ROOT = "taskplane"


def get_logger(module: str) -> logging.Logger:
    """Return the logger of ``module`` (pass ``__name__``), under the ``taskplane`` root."""
    if module == ROOT or module.startswith(ROOT + "."):
        return logging.getLogger(module)
    return logging.getLogger(f"{ROOT}.{module}")

"""``taskplane oci spec``: print the spec ``taskplane run`` would use, as JSON (``ctr oci spec``).

The same flags as ``run`` apply (``--user``, ``--memory-limit``, ``--spec FILE``...); without
``--rootfs`` the root is ``rootfs`` (relative to the spec file when it is given back to
``run --spec``), as in ``ctr oci spec``. Without an ID the spec has no hostname and no cgroup,
so ``run --spec`` fills in the run's own (the ID's hostname, taskplane's cgroup for it).
Nothing is booted and nothing is created.
"""

from __future__ import annotations

import argparse
import json
import sys

from taskplane.cli import Options
from taskplane.cli_run import spec_from_args

__all__ = ["spec"]


def spec(opts: Options, args: argparse.Namespace) -> int:
    """Print the spec the flags of ``args`` give, as JSON."""
    from plugins import identifiers

    identifiers.validate_namespace(opts.namespace)
    if args.id is not None:
        identifiers.validate_task_id(args.id)
    document = spec_from_args(args, args.id or "spec", opts.namespace, rootfs_required=False)
    if args.id is None:
        if args.hostname is None:
            del document["hostname"]
        del document["linux"]["cgroupsPath"]
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0

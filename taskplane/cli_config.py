"""``taskplane config default | dump | validate FILE``.

``default`` prints every registered plugin's default config (built-in and installed
third-party plugins) as TOML that ``validate`` accepts. ``dump`` prints the config in effect:
the ``--config`` file (or the embedded defaults) merged with its imports, migrated to version 3,
every plugin's table decoded with its defaults filled in, and ``--root``/``--state`` applied.
``validate`` checks a file strictly and prints every problem, one per line, then exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from taskplane.cli import Options

__all__ = ["default", "default_toml", "dump", "registrations", "validate"]


def registrations() -> tuple[Any, ...]:
    """Every registration boot would see: built-ins, then installed entry points."""
    import taskplane
    from registry.discovery import discover

    registry, _failures = discover(taskplane.builtin_plugins())
    return registry.registrations()


def default_toml() -> str:
    """The output of ``taskplane config default``."""
    from registry.config import default_config, to_toml

    return to_toml(default_config(registrations()))


def default(opts: Options, args: argparse.Namespace) -> int:
    """Print the default config of every registered plugin."""
    sys.stdout.write(default_toml())
    return 0


def dump(opts: Options, args: argparse.Namespace) -> int:
    """Print the effective config."""
    import attrs

    from registry.config import (
        coerce_config,
        decode_plugin_configs,
        effective_config_dict,
        to_toml,
    )

    config = coerce_config(opts.config)
    decoded = decode_plugin_configs(config, registrations())  # migrates to version 3 first
    config = attrs.evolve(config, root=opts.root or config.root, state=opts.state or config.state)
    sys.stdout.write(to_toml(effective_config_dict(config, decoded)))
    return 0


def validate(opts: Options, args: argparse.Namespace) -> int:
    """Check ``args.file``; print ``<file>: ok`` or raise the ConfigError listing every issue."""
    from registry.config import decode_plugin_configs, load_config

    decode_plugin_configs(load_config(args.file), registrations())
    print(f"{args.file}: ok")
    return 0

"""``taskplane config default | dump | validate FILE``.

``default`` prints every registered plugin's default config (built-in and installed
third-party plugins) as TOML that ``validate`` accepts. ``dump`` prints the config in effect:
the ``--config`` file (or the embedded defaults) merged with its imports, migrated to version 3,
every plugin's table decoded with its defaults filled in, and ``--root``/``--state`` applied.
``validate`` checks a file strictly and prints every problem on stderr, one per line: errors,
then warnings (``warning:``) for containerd settings taskplane ignores. It exits 1 on any error,
0 on warnings alone; ``--strict`` makes every warning an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from taskplane.cli_common import Command, Options, add_commands

if TYPE_CHECKING:
    from registry import Registration

__all__ = ["COMMANDS", "default", "default_toml", "dump", "register", "registrations", "validate"]

#: ``taskplane config COMMAND``.
COMMANDS = (
    Command(
        "default",
        "taskplane.cli_config:register_default",
        "print every registered plugin's default config as TOML",
    ),
    Command(
        "dump",
        "taskplane.cli_config:register_dump",
        "print the effective config (after imports and migration)",
    ),
    Command(
        "validate",
        "taskplane.cli_config:register_validate",
        "check a config file; print every error and ignored setting",
    ),
)


def register(parser: argparse.ArgumentParser) -> None:
    """``taskplane config COMMAND``."""
    add_commands(parser, COMMANDS)


def register_default(parser: argparse.ArgumentParser) -> None:
    """``taskplane config default`` has no arguments of its own."""
    parser.set_defaults(handler=default)


def register_dump(parser: argparse.ArgumentParser) -> None:
    """``taskplane config dump`` has no arguments of its own."""
    parser.set_defaults(handler=dump)


def register_validate(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane config validate``."""
    parser.add_argument("file", metavar="FILE")
    parser.add_argument(
        "--strict", action="store_true", help="treat ignored settings (warnings) as errors"
    )
    parser.set_defaults(handler=validate)


def registrations() -> tuple[Registration, ...]:
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

    from plugins.containerd_config import CATALOGUE
    from registry.config import check_config, effective_config_dict, to_toml

    checked = check_config(opts.config, registrations(), CATALOGUE)  # migrated to version 3
    config = checked.config
    config = attrs.evolve(config, root=opts.root or config.root, state=opts.state or config.state)
    sys.stdout.write(to_toml(effective_config_dict(config, checked.decoded)))
    return 0


def validate(opts: Options, args: argparse.Namespace) -> int:
    """Check ``args.file``: every error and warning on stderr, ``<file>: ok`` on stdout when
    there is no error; exit 1 on any error (and on any warning with ``--strict``)."""
    import attrs

    from plugins.containerd_config import CATALOGUE
    from registry.config import ConfigError, check_config
    from taskplane.errors import PROG

    try:
        warnings = list(check_config(args.file, registrations(), CATALOGUE).warnings)
        errors = []
    except ConfigError as e:
        errors, warnings = e.issues, e.warnings
    if args.strict:
        errors, warnings = [*errors, *(attrs.evolve(w, warning=False) for w in warnings)], []
    for issue in [*errors, *warnings]:
        print(f"{PROG}: {issue}", file=sys.stderr)
    if errors:
        return 1
    print(f"{args.file}: ok")
    return 0

"""What every ``taskplane`` command module shares: the global options, the lazy command tables,
the parser class and the table printer.

It imports nothing heavy (argparse, attrs): every command imports it, ``tasks ls`` included.

The command line is a tree of :class:`Command` tables. :func:`add_commands` adds one
placeholder sub-parser per entry, with its name, aliases and help, so ``taskplane --help``
lists every command without importing one. Only when the parser meets a command's name is the
command's module imported and its ``register(parser)`` called: a leaf adds its flags and its
handler (``parser.set_defaults(handler=...)``), a group adds its own table. So ``taskplane tasks
ls`` imports :mod:`taskplane.cli_tasks` and nothing of ``run``, ``exec`` or ``events``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, cast

import attrs

from taskplane import DEFAULT_NAMESPACE
from taskplane.errors import EXIT_USAGE

if TYPE_CHECKING:
    from registry import Host

__all__ = [
    "DEFAULT_LOG_LEVEL",
    "ENV_CONFIG",
    "ENV_NAMESPACE",
    "LOG_LEVELS",
    "Command",
    "Handler",
    "Options",
    "Parser",
    "add_commands",
    "add_global_options",
    "command_nargs",
    "format_table",
    "line_count",
    "list_format",
]

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The level of taskplane's own log on stderr without ``--log-level``.
DEFAULT_LOG_LEVEL = "error"

#: Environment variables that stand in for a missing global option.
ENV_CONFIG = "TASKPLANE_CONFIG"
ENV_NAMESPACE = "TASKPLANE_NAMESPACE"

#: Exit code of a command-line usage error (argparse's too).


@attrs.frozen
class Options:
    """The global options every command sees."""

    config: str | None = None
    root: str | None = None
    state: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    log_level: str = DEFAULT_LOG_LEVEL
    debug: bool = False

    async def boot_async(self) -> Host:
        """Boot the registry with these options (config file, root and state overrides). A
        command is short-lived: its shim manager serves the shims' events from its first shim
        on (:func:`runtime_v2.shim_config.events_on_demand`). The log is set up first
        (``registry.log.first_use``): the boot imports asyncio, which logs through
        :mod:`logging` itself. The cycle collector a command started without is given back
        after the boot (:func:`taskplane.collector.release`)."""
        import taskplane
        from registry.log import first_use
        from runtime_v2.shim_config import events_on_demand
        from taskplane.collector import release

        first_use()
        with events_on_demand():
            host = await taskplane.boot_async(self.config, root=self.root, state=self.state)
        release()  # whatever comes next may run long (taskplane.collector)
        return host

    def boot(self) -> Host:
        """Synchronous :meth:`boot_async`; the returned Host owns its event loop."""
        import taskplane
        from registry.log import first_use
        from runtime_v2.shim_config import events_on_demand
        from taskplane.collector import release

        first_use()
        with events_on_demand():
            host = taskplane.boot(self.config, root=self.root, state=self.state)
        release()  # whatever comes next may run long (taskplane.collector)
        return host


#: What a command runs: the global options and the parsed arguments in, the exit code out.
Handler = Callable[[Options, argparse.Namespace], int]


@attrs.frozen
class Command:
    """One entry of a command table: ``taskplane NAME`` (or ``taskplane GROUP NAME``).

    ``register`` is ``"module"`` or ``"module:function"`` (default function: ``register``):
    called with the command's parser once the command is chosen, it adds the flags and the
    handler, or the sub-commands of a group.
    """

    name: str
    register: str
    help: str
    aliases: tuple[str, ...] = ()
    usage: str | None = None

    def load(self) -> Callable[[argparse.ArgumentParser], None]:
        """Import the command's module and return its register function."""
        module, _, function = self.register.partition(":")
        # __import__ rather than importlib.import_module: the interpreter's import statement
        # path, which ``python -X importtime`` reports (importlib's pure-Python path is not).
        found: Callable[[argparse.ArgumentParser], None] = getattr(
            __import__(module, fromlist=["register"]), function or "register"
        )
        return found


def _terminal_columns() -> int:
    # shutil.get_terminal_size's answer ($COLUMNS, else stdout's terminal, else 80) without
    # importing shutil (and bz2, lzma), which argparse's formatter does for every argument.
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help formatter, as wide as the terminal (less 2, as argparse's own)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line naming the command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Exit 2 with ``<prog>: <message> (see '<prog> --help')`` on stderr."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


class _LazyCommands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Sub-commands known by name and help until one is chosen: only then is its parser made
    and its module imported. A command line makes the parsers of the commands it names, not
    one per command of every table it passes (each parser is argparse's work and three
    translation lookups)."""

    def add_command(self, command: Command) -> None:
        """Add ``command``: its names and help now (what ``--help`` lists), its parser when
        chosen."""
        self._choices_actions.append(
            self._ChoicesPseudoAction(command.name, list(command.aliases), command.help)
        )
        for name in (command.name, *command.aliases):
            self._name_parser_map[name] = command  # where argparse keeps the parser

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, Sequence) and values:
            chosen = self._name_parser_map.get(str(values[0]))
            if isinstance(chosen, Command):
                made = self._make(chosen, dashdash=getattr(parser, "taskplane_dashdash", False))
                for name in (chosen.name, *chosen.aliases):
                    self._name_parser_map[name] = made
        super().__call__(parser, namespace, values, option_string)

    def _make(self, command: Command, *, dashdash: bool) -> argparse.ArgumentParser:
        """The parser of a chosen command, as ``add_parser`` would have made it, with the
        global options and what the command's module adds."""
        made = Parser(
            prog=f"{self._prog_prefix} {command.name}",
            description=command.help,
            usage=command.usage,
        )
        made.taskplane_dashdash = dashdash  # type: ignore[attr-defined]
        add_global_options(made, top=False)
        command.load()(made)
        return made


def add_commands(
    parser: argparse.ArgumentParser, table: Iterable[Command], *, dest: str = "subcommand"
) -> None:
    """Add ``table`` as ``parser``'s sub-commands (one is required), each made by its module
    when chosen (see the module docstring)."""
    subcommands = cast(
        _LazyCommands,
        parser.add_subparsers(
            dest=dest, metavar="COMMAND", parser_class=Parser, action=_LazyCommands
        ),
    )
    subcommands.required = True
    for command in table:
        subcommands.add_command(command)


def command_nargs(parser: argparse.ArgumentParser) -> str:
    """The ``nargs`` of a container command following the task id: everything after the id
    (``run --rootfs r id ls -l``), or, when the caller split the command off at ``--``, the
    words before it (``run id --rm -- ls``: options may follow the id)."""
    return "*" if getattr(parser, "taskplane_dashdash", False) else argparse.REMAINDER


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Add the global options; on sub-commands they default to SUPPRESS so the top level wins
    (``taskplane --namespace x tasks ls`` and ``taskplane tasks ls --namespace x`` are one)."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "--config",
        metavar="FILE",
        default=default(os.environ.get(ENV_CONFIG) or None),
        help=f"config file (default: ${ENV_CONFIG}, else the embedded defaults)",
    )
    group.add_argument(
        "--root",
        metavar="DIR",
        default=default(None),
        help="persistent state directory (overrides the config's root)",
    )
    group.add_argument(
        "--state",
        metavar="DIR",
        default=default(None),
        help="runtime state directory (overrides the config's state)",
    )
    group.add_argument(
        "--namespace",
        "-n",
        metavar="NS",
        default=default(os.environ.get(ENV_NAMESPACE) or DEFAULT_NAMESPACE),
        help=f"namespace of tasks (default: ${ENV_NAMESPACE} or 'default')",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default(DEFAULT_LOG_LEVEL),
        type=str.lower,
        choices=LOG_LEVELS,
        help="log level of taskplane's own log on stderr (default: error; "
        "plugin failures are shown by 'plugins ls' either way)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="print tracebacks with errors"
    )


def list_format(parser: argparse.ArgumentParser) -> None:
    """``-q`` (ids only) and ``--json`` for a list command."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the ids")
    group.add_argument("--json", action="store_true", help="print JSON instead of a table")


def line_count(value: str) -> int:
    """A non-negative number of lines (an argparse ``type``)."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"invalid line count {value!r}: use a number, 0 or more")
    return int(value)


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by at least two spaces, like ctr's tabwriter output."""
    all_rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("    ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)

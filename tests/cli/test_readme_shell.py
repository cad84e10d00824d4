"""Every shell command of the README runs, as written, and prints what the README shows.

The extractor reads every ``sh``, ``console`` and ``text`` block of README.md:

- a ``console`` block is a session: ``$ command`` lines, each followed by the output it prints;
- a ``sh`` block is one command or synopsis a line (an indented line continues the one above).
  A line with a metavariable (``[``, ``|``, ``...``, an UPPERCASE word) is a synopsis: the
  command it names exists and takes every option it shows (checked against ``--help``); any
  other line is a command that runs and exits 0; a line whose comment says ``not run by the
  README's tests: WHY`` is not run, and says why to the reader;
- a ``text`` block with ``output="COMMAND"`` is what that command (of an earlier ``sh`` block)
  prints; any other ``text`` block may hold no command at all.

Every command runs through bash the way a user types it, with ``taskplane`` on PATH by
activating the virtualenv the tests run in (``.venv``, what ``make venv`` makes). What the README
leaves to the reader's machine is the test's own: ``taskplane`` is a shell function adding
``--root``/``--state`` of the test's private dirs, ``TASKPLANE_NAMESPACE`` is the test's
namespace, and in commands and shown output the README's defaults (``/run/taskplane``,
``/var/lib/taskplane``, the namespace ``default``, ``/srv/busybox``, ``~/.cache``) stand for them.
``/srv/busybox`` is built by the README's own ``taskplane rootfs busybox /srv/busybox`` under a
temporary path, not in /srv: tests write nothing outside their temporary dirs on a shared
machine, and containers run without ``--overlay`` write into their rootfs. The quick start runs
in the repository itself (``make demo``, ``. .venv/bin/activate``), the other blocks in an empty
directory of their own holding the files the README shows (``toml`` blocks titled with a bare
file name) and a copy of ``examples/`` when a command names it; ``pip install`` installs into a
directory of the test's (PIP_TARGET, no index), never into the shared virtualenv.

Output is compared line by line after normalizing what varies from run to run: timestamps,
durations in ms, ``pid=N``, a number in a table row (columns two or more spaces apart), the
demo's temporary dir and container ID, and column spacing. A shown line ``...`` or ``... (...)``
stands for one or more lines (``N warnings in all`` counts the warnings, ``the same N lines``
the lines left out). A command exits 0 unless its shown output
has an error line (``taskplane: ...`` that is not a warning): then 1; ``echo $?`` shows it.

Two trailing comments are instructions the test carries out: ``# while `CMD` runs elsewhere``
(the command runs in the background, as in a second terminal, until ``CMD`` has run and the
lines shown before ``^C`` are printed; ``^C`` sends it SIGINT) and ``# its shim is then
stopped`` (the task's shim gets SIGSTOP). A program the test does not know fails the suite.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from taskplane import gen_docs
from tests.prerequisites import require

from .conftest import REPO, Taskplane, base_env
from .peer_checks import shims_of
from .test_events import READY, Lines

README = REPO / "README.md"
T = 120  # seconds: stops a hung command only

#: What a README line says to be left alone (after it, the reason).
NOT_RUN = "not run by the README's tests:"
#: The programs the README's commands may start (the first word of every pipeline stage).
PROGRAMS = frozenset({".", "taskplane", "make", "pip", "containerd", "sed", "echo"})
#: The make targets a test may run (``make test`` would run the suite inside itself).
MAKE_TARGETS = frozenset({"demo", "venv"})
ELSEWHERE = re.compile(r"#\s*while `(?P<command>[^`]+)` runs elsewhere\s*$")
SHIM_STOPPED = re.compile(r"#\s*its shim is then stopped\s*$")
#: A synopsis metavariable: brackets, alternatives, repetition, an UPPERCASE placeholder.
METAVARIABLE = re.compile(r"\[|\]|\||\.\.\.|(?<![\w.-])[A-Z][A-Z_]*[A-Z](?![\w.-])")
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
OUTPUT_OF = re.compile(r'output="(?P<command>[^"]+)"')
TITLE = re.compile(r'title="(?P<title>[^"/]+)"')

#: The README's defaults, replaced by the test's own values.
STATE, ROOT, ROOTFS, CACHE, NAMESPACE = (
    "/run/taskplane",
    "/var/lib/taskplane",
    "/srv/busybox",
    "/root/.cache",
    "default",
)


@attrs.frozen
class Command:
    """One command of the README, the line it is on and the output shown (None: not shown)."""

    text: str
    line: int
    output: tuple[str, ...] | None = None
    #: A ``sh`` line with metavariables: checked against ``--help``, not run.
    synopsis: bool = False

    @property
    def not_run(self) -> str | None:
        """Why the README says this command is not run by the tests (None: it is)."""
        _, found, why = self.text.partition(NOT_RUN)
        return why.strip(" )") if found else None


@attrs.frozen
class Block:
    """A README block's commands, with its first line (for test ids)."""

    line: int
    commands: tuple[Command, ...]

    def runnable(self) -> list[Command]:
        return [c for c in self.commands if c.not_run is None and not c.synopsis]

    @property
    def id(self) -> str:
        first = (self.runnable() or list(self.commands))[0].text
        return f"line{self.line}:{first[:40]}"


def _without_comment(command: str) -> str:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: the shell would refuse it too
        return command
    return " ".join(tokens)


def programs(command: str) -> list[str]:
    """The first word of every stage of ``command`` (pipelines, ``&&``, ``||``, ``;``)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    starts, expect = [], True
    for token in lexer:
        if expect:
            starts.append(token)
        expect = token in {"|", "||", "&&", ";", "&"}
    return starts


def readme_blocks(text: str | None = None) -> tuple[list[Block], list[str], dict[str, str]]:
    """(blocks of commands, problems found, files the README shows by name)."""
    text = README.read_text() if text is None else text
    outputs: dict[str, tuple[str, ...]] = {}
    parsed: list[tuple[str, int, str]] = []
    files: dict[str, str] = {}
    problems: list[str] = []
    for match in gen_docs.FENCE.finditer(text):
        info = match["info"].strip()
        language = info.split(" ", 1)[0]
        line = text.count("\n", 0, match.start()) + 1
        if language == "toml" and (title := TITLE.search(info)):
            files[title["title"]] = match["body"]
        elif language == "text" and (output := OUTPUT_OF.search(info)):
            outputs[output["command"]] = tuple(match["body"].rstrip("\n").split("\n"))
        elif language == "text":
            for offset, body_line in enumerate(match["body"].splitlines(), start=1):
                if body_line.startswith(("$ ", "taskplane ")):
                    problems.append(
                        f"README line {line + offset}: a command in a text block (make the block "
                        f"console or sh so the tests run it): {body_line}"
                    )
        elif language in {"sh", "console"}:
            parsed.append((language, line, match["body"]))
    blocks = []
    for language, line, body in parsed:
        commands = _session(line, body) if language == "console" else _lines(line, body, outputs)
        if not commands:
            problems.append(f"README line {line}: a {language} block without a command")
        for command in commands:
            if command.not_run is not None and not command.not_run:
                problems.append(f"README line {command.line}: {NOT_RUN} without a reason")
            stages = command.text.split()[:1] if command.synopsis else programs(command.text)
            if command.not_run is None and not command.synopsis:
                problems += _make_targets(command)
            for program in stages:
                if program not in PROGRAMS:
                    problems.append(
                        f"README line {command.line}: {program!r} is a program the README "
                        f"test does not know (teach tests/cli/test_readme_shell.py to run it "
                        f"or say '{NOT_RUN} WHY'): {command.text}"
                    )
        blocks.append(Block(line, tuple(commands)))
    shown = {c.text.split("#", 1)[0].strip() for b in blocks for c in b.commands}
    problems += [f'output="{name}" names no sh command' for name in outputs if name not in shown]
    return blocks, problems, files


def _make_targets(command: Command) -> list[str]:
    """A ``make`` target the test may not run (``make test`` is the suite itself)."""
    words = command.text.split("#", 1)[0].split()
    if words[:1] != ["make"] or set(words[1:]) <= MAKE_TARGETS:
        return []
    return [f"README line {command.line}: the tests run only make {sorted(MAKE_TARGETS)}"]


def _session(line: int, body: str) -> list[Command]:
    steps: list[tuple[str, int, list[str]]] = []
    for offset, body_line in enumerate(body.splitlines(), start=1):
        if body_line.startswith("$ "):
            steps.append((body_line[2:], line + offset, []))
        elif steps:
            steps[-1][2].append(body_line)
    return [Command(text, at, tuple(output)) for text, at, output in steps]


def _lines(line: int, body: str, outputs: dict[str, tuple[str, ...]]) -> list[Command]:
    commands: list[Command] = []
    for offset, body_line in enumerate(body.splitlines(), start=1):
        if body_line[:1].isspace() and commands:  # continues the synopsis above
            last = commands.pop()
            text = f"{last.text} {body_line.strip()}"
            commands.append(attrs.evolve(last, text=text, synopsis=True))
        elif body_line.strip():
            name = body_line.split("#", 1)[0].strip()
            synopsis = bool(METAVARIABLE.search(_without_comment(body_line)))
            commands.append(Command(body_line, line + offset, outputs.get(name), synopsis))
    return commands


BLOCKS, PROBLEMS, FILES = readme_blocks()


def test_the_extractor_knows_every_readme_command() -> None:
    """Every command line of the README is run by a test, checked as a synopsis, or says why
    not; an unknown program, a command hidden in a text block or a reason-less skip fails."""
    assert PROBLEMS == []
    runnable = [c.text for b in BLOCKS for c in b.runnable()]
    assert any(c.startswith("make demo") for c in runnable), runnable


def test_the_extractor_rejects_what_it_cannot_run() -> None:
    """The checks above are real: they fire on a README with each kind of mistake."""
    bad = (
        "```text\n$ taskplane tasks ls\n```\n"
        "```sh\ndocker run alpine\nmake test   # not run by the README's tests:\nmake test\n```\n"
        '```text output="taskplane nothing"\nx\n```\n'
    )
    _, problems, _ = readme_blocks(bad)
    assert [p.split(":", 1)[0] for p in problems] == [
        "README line 2",
        "README line 5",
        "README line 6",
        "README line 7",
        'output="taskplane nothing" names no sh command',
    ], problems


# ------------------------------------------------------------------------------ synopses


SYNOPSES = [c for b in BLOCKS for c in b.commands if c.not_run is None and c.synopsis]


@pytest.mark.parametrize("synopsis", SYNOPSES, ids=lambda c: f"line{c.line}")
def test_readme_synopsis_matches_the_command_line(synopsis: Command) -> None:
    """The command a synopsis shows exists and takes every option it lists (its ``--help``)."""
    words = synopsis.text.split()
    assert words[0] == "taskplane", synopsis
    path = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    helped = subprocess.run(
        [sys.executable, "-m", "taskplane", *path, "--help"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=T,
    )
    assert helped.returncode == 0, (synopsis.text, helped.stderr)
    usage = helped.stdout
    missing = [o for o in OPTION.findall(synopsis.text) if not re.search(rf"{o}\b", usage)]
    assert missing == [], f"README line {synopsis.line}: {missing} not in `{' '.join(path)}`"


# ------------------------------------------------------------------------------ output


_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_VARYING = [
    (_TIMESTAMP, "<time>"),
    (re.compile(r"\b\d+(\.\d+)? ?ms\b"), "<ms>"),
    (re.compile(r"\bpid=\d+"), "pid=<pid>"),
    (re.compile(r"/tmp/tp-demo-\w+"), "<demo dir>"),
    (re.compile(r"\bdemo-\d+\b"), "demo-<pid>"),
]
_ELISION = re.compile(r"^\.\.\.( \((?P<what>.*)\))?$")


def normalized(line: str) -> str:
    """``line`` with what varies from run to run replaced, and single spaces."""
    for pattern, placeholder in _VARYING:
        line = pattern.sub(placeholder, line)
    tokens = line.split()
    if "  " in line.strip():  # a table row: its numbers (pids, bytes) vary
        tokens = ["<n>" if token.isdigit() else token for token in tokens]
    return " ".join(tokens)


def assert_output(command: Command, shown: tuple[str, ...], printed: list[str]) -> None:
    """``printed`` is what the README shows, elisions and varying values allowed for."""
    want = [normalized(line) for line in shown]
    got = [normalized(line) for line in printed]
    where = f"README line {command.line}: {command.text}\nprinted:\n" + "\n".join(printed)
    i = j = 0
    while i < len(want):
        elided = _ELISION.match(want[i])
        if elided is None:
            assert j < len(got) and got[j] == want[i], f"{where}\nexpected: {shown[i]}"
            i, j = i + 1, j + 1
            continue
        following = want[i + 1] if i + 1 < len(want) else None
        start = j
        while j < len(got) and (j == start or got[j] != following):
            j += 1
        assert j > start, f"{where}\nnothing where the README shows {shown[i]}"
        if count := re.search(r"the same (\d+) lines", elided["what"] or ""):
            assert j - start == int(count[1]), f"{where}\n{j - start} lines for {shown[i]}"
        if count := re.search(r"(\d+) warnings in all", elided["what"] or ""):
            warnings = [line for line in printed if ": warning: " in line]
            assert len(warnings) == int(count[1]), f"{where}\n{len(warnings)} warnings"
        i += 1
    assert j == len(got), f"{where}\nmore output than the README shows"


def expected_status(command: str, shown: tuple[str, ...]) -> int:
    """1 when the README shows an error, else 0 (and 0 when ``echo $?`` shows the status)."""
    if programs(command)[-1:] == ["echo"] and command.rstrip().endswith("echo $?"):
        return 0
    errors = [s for s in shown if s.startswith("taskplane: ") and ": warning: " not in s]
    return 1 if errors else 0


# ------------------------------------------------------------------------------ running


@attrs.frozen
class Shell:
    """Runs README commands as a user would, in the test's private dirs."""

    runner: Taskplane
    rootfs: Path
    cwd: Path
    env: dict[str, str]
    activate: bool
    #: Commands run before each command: the README's ``. FILE`` lines seen so far.
    sourced: list[str] = attrs.field(factory=list)

    def script(self, command: str) -> str:
        r = self.runner
        lines = [
            # A user with a private state dir: the README's `taskplane` with the test's dirs.
            f'taskplane() {{ command taskplane --root {r.root} --state {r.state} "$@"; }}',
            *self.sourced,
            command,
        ]
        if self.activate:
            lines.insert(0, f". {shlex.quote(sys.prefix)}/bin/activate")
        return "\n".join(lines)

    def substituted(self, command: str) -> str:
        command = command.replace(ROOTFS, str(self.rootfs)).replace(CACHE, self.env[CACHE_ENV])
        return command.replace(f"namespace=={NAMESPACE}", f"namespace=={self.runner.namespace}")

    def expected(self, shown: tuple[str, ...]) -> tuple[str, ...]:
        r = self.runner
        out = []
        for line in shown:
            line = line.replace(STATE, str(r.state)).replace(ROOT, str(r.root))
            line = line.replace(ROOTFS, str(self.rootfs))
            line = line.replace(CACHE, self.env[CACHE_ENV])
            line = re.sub(rf"(?<=[\s/]){NAMESPACE}(?=[\s/])", r.namespace, line)
            out.append(line)
        return tuple(out)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", self.script(self.substituted(command))],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=T,
        )

    def background(self, command: str) -> subprocess.Popen[str]:
        """``command`` in a process group of its own (a second terminal), logging at info
        level so the test sees when ``taskplane events`` is subscribed."""
        command = command.replace("taskplane ", "taskplane --log-level info ", 1)
        return subprocess.Popen(
            ["bash", "-c", self.script(self.substituted(command))],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )


CACHE_ENV = "XDG_CACHE_HOME"
#: What a parent make (``make test``) puts in the environment of the commands it runs.
MAKE_ENV = frozenset({"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"})


def _venv_path() -> str:
    """PATH without the virtualenv's bin: activation must be what puts ``taskplane`` on it."""
    bin_dir = os.path.join(sys.prefix, "bin")
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bin_dir)


@pytest.fixture(scope="module")
def readme_busybox(
    integration_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``/srv/busybox``, built by the README's own ``taskplane rootfs busybox`` command."""
    (build,) = [
        c.text.split("#", 1)[0].strip()
        for b in BLOCKS
        for c in b.commands
        if "rootfs busybox " + ROOTFS in c.text
    ]
    target = tmp_path_factory.mktemp("srv") / "busybox"
    argv = [sys.executable, "-m", *shlex.split(build.replace(ROOTFS, str(target)))]
    built = subprocess.run(argv, env=base_env(), capture_output=True, text=True, timeout=T)
    assert built.returncode == 0, built.stderr
    assert built.stdout == f"{target}\n"
    return target


def _needs_the_checkout(block: Block) -> bool:
    return any(programs(c.text)[0] in {"make", "."} for c in block.runnable())


def _shell(runner: Taskplane, block: Block, rootfs: Path, tmp_path: Path) -> Shell:
    # A user's fresh shell: not inside `make test` (a sub-make prints "Entering directory").
    env = {k: v for k, v in runner.env.items() if k not in MAKE_ENV}
    env |= {"PATH": _venv_path(), CACHE_ENV: str(tmp_path / "cache")}
    in_checkout = _needs_the_checkout(block)
    if in_checkout:
        # The quick start: in the checkout, with the virtualenv `make venv` made there.
        require(
            []
            if Path(sys.prefix).resolve() == (REPO / ".venv").resolve()
            else [f"the tests run from {sys.prefix}, not the checkout's .venv (run: make test)"]
        )
        stale = subprocess.run(["make", "-q", "venv"], cwd=REPO, env=env, timeout=T)
        require([] if stale.returncode == 0 else [".venv is not up to date (run: make venv)"])
        rootfs = tmp_path / "srv" / "busybox"
    cwd = REPO if in_checkout else runner.cwd
    for name, body in FILES.items():
        (runner.cwd / name).write_text(body)
    if any("examples/" in c.text for c in block.runnable()):
        shutil.copytree(
            REPO / "examples",
            runner.cwd / "examples",
            ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
        )
        site = tmp_path / "site"
        # pip configured the way a user does (environment), into a directory of the test's.
        env |= {
            "PIP_TARGET": str(site),
            "PIP_NO_INDEX": "1",
            "PIP_NO_DEPS": "1",
            "PIP_NO_BUILD_ISOLATION": "0",
            "PIP_QUIET": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_ROOT_USER_ACTION": "ignore",
            "PYTHONPATH": os.pathsep.join([str(site), env["PYTHONPATH"]]),
        }
    return Shell(runner, rootfs, cwd, env, activate=not in_checkout)


RUNNABLE = [b for b in BLOCKS if b.runnable()]


@pytest.mark.integration
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_readme_block_runs_as_written(
    runner: Taskplane, readme_busybox: Path, tmp_path: Path, block: Block
) -> None:
    """Each command of the block runs in bash, exits as the README implies and prints what it
    shows (see the module docstring); nothing is left behind (the runner's leak check)."""
    shell = _shell(runner, block, readme_busybox, tmp_path)
    stopped: list[int] = []
    try:
        for command in block.runnable():
            if ELSEWHERE.search(command.text):
                _run_alongside(shell, command)
                continue
            result = shell.run(command.text)
            shown = shell.expected(command.output or ())
            assert result.returncode == expected_status(command.text, shown), (
                command.text,
                result.stdout,
            )
            if command.output is not None:
                assert_output(command, shown, result.stdout.splitlines())
            if programs(command.text)[0] == ".":
                shell.sourced.append(command.text)  # as in the user's shell, from now on
            if command.text.startswith("make demo"):
                # The demo removed the private dir its first line names.
                private = re.search(r"/tmp/tp-demo-\w+", result.stdout)
                assert private is not None and not os.path.exists(private[0]), result.stdout
            if SHIM_STOPPED.search(command.text):
                (task_id,) = result.stdout.split()
                stopped += shims_of(runner.state, runner.namespace, task_id)
                assert stopped, f"no shim of {task_id}"
                for pid in stopped:
                    os.kill(pid, signal.SIGSTOP)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _run_alongside(shell: Shell, command: Command) -> None:
    """``command`` in the background while the command its comment names runs; the lines the
    README shows before ``^C`` are printed, then SIGINT ends it quietly with status 130."""
    elsewhere = ELSEWHERE.search(command.text)
    assert elsewhere is not None and command.output is not None
    shown = shell.expected(command.output)
    interrupted = shown[-1:] == ("^C",)
    before = shown[:-1] if interrupted else shown
    proc = shell.background(command.text)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = Lines(proc.stdout), Lines(proc.stderr)
    try:
        stderr.until(READY)  # subscribed: from now on it prints what happens
        other = shell.run(elsewhere["command"])
        assert "Traceback" not in other.stdout, other.stdout
        printed = [stdout.next() for _ in before]
        assert_output(command, before, printed)
        assert interrupted, f"README line {command.line}: a background command without ^C"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=T) == 130
        assert stdout.rest() == []
        assert [e for e in stderr.rest() if not e.startswith("taskplane: INFO ")] == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=T)
        stdout.join()
        stderr.join()
        proc.stdout.close()
        proc.stderr.close()

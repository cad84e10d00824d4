"""The shape of the code, read from the source alone (no imports, no I/O beyond reading files):
no module-level import circle, layers that point one way, no overlong module without a reason,
no reference to documents outside the repository, one logger scheme.

Each checker takes the repository root, so the tests below also run it on a planted fake tree
to show it catches what it names.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "plugins", "runtime_v2", "taskplane")
#: Each package and the packages it must not import (at module level or anywhere else).
FORBIDDEN = {
    "registry": ("plugins", "runtime_v2", "taskplane"),
    "plugins": ("runtime_v2", "taskplane"),
    "runtime_v2": ("taskplane",),
}
#: ttrpc is becoming its own library: nothing of the repository outside itself.
TTRPC = "runtime_v2.ttrpc"
MAX_LINES = 600
LONG_REASON = "This module is long because"
#: References to documents that are not in the repository (spelt in pieces, so that this file
#: does not match itself).
DEAD_REFERENCES = re.compile(
    "|".join(
        [
            "spec" + r"\s+section",
            r"\bspec" + r" \d",
            "users" + "-ask",
            r"peers" + r"\.md",
            r"runtime-v2" + r"\.md",
            r"\bstyle" + r"\.md",
            r"\bshared/" + "spec",
        ]
    ),
    re.IGNORECASE,
)
#: Where references are looked for: the packages, tests, benchmarks, examples and README.
REFERENCE_PLACES = (*PACKAGES, "tests", "bench", "examples", "README.md")
REFERENCE_SUFFIXES = (".py", ".pyi", ".proto", ".md", ".toml", ".txt", ".cfg")


# -- reading the tree ---------------------------------------------------------------------------


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every hand-written module of the packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path.name.endswith("_pb2.py"):
                continue  # generated
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names ``node`` imports (for ``from x import y``: ``x`` and ``x.y``)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    yield base
    for alias in node.names:
        yield f"{base}.{alias.name}"


def module_level_imports(module: str, path: Path) -> set[str]:
    """What ``module`` imports when it is imported: statements at module level, inside
    top-level ``if``/``try``/``with`` blocks too, but not under ``if TYPE_CHECKING:`` and not in
    functions or classes."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(_imported(node, module, is_package))
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)
        elif isinstance(node, ast.With):
            pending.extend(node.body)
    return found


def all_imports(module: str, path: Path) -> set[str]:
    """Every name ``module`` imports anywhere: functions and ``TYPE_CHECKING`` blocks too."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(_imported(node, module, is_package))
    return found


# -- the checkers -------------------------------------------------------------------------------


def import_circles(root: Path) -> list[list[str]]:
    """Every module-level import circle between modules, each as the modules on it."""
    mods = modules(root)
    edges = {
        name: sorted(t for t in module_level_imports(name, path) if t in mods and t != name)
        for name, path in mods.items()
    }
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    for start in mods:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    return sorted(circles)


def layer_violations(root: Path) -> list[str]:
    """``module imports target`` for every import against the layering."""
    found: list[str] = []
    for name, path in modules(root).items():
        package = name.split(".")[0]
        for target in sorted(all_imports(name, path)):
            top = target.split(".")[0]
            if top in FORBIDDEN.get(package, ()):
                found.append(f"{name} imports {target}")
            elif (
                (name == TTRPC or name.startswith(TTRPC + "."))
                and top in PACKAGES
                and not (target == TTRPC or target.startswith(TTRPC + "."))
                and target != "runtime_v2"
            ):
                found.append(f"{name} imports {target}")
    return found


def long_modules(root: Path) -> list[str]:
    """Modules over :data:`MAX_LINES` lines whose docstring does not say why."""
    found: list[str] = []
    for name, path in modules(root).items():
        text = path.read_text()
        lines = text.count("\n")
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if LONG_REASON not in " ".join(docstring.split()):
            found.append(f"{name}: {lines} lines")
    return found


def dead_references(root: Path) -> list[str]:
    """``file:line: text`` for every reference to a document outside the repository."""
    found: list[str] = []
    for place in REFERENCE_PLACES:
        start = root / place
        paths = [start] if start.is_file() else sorted(start.rglob("*"))
        for path in paths:
            if not path.is_file() or path.suffix not in REFERENCE_SUFFIXES:
                continue
            if any(
                part in ("__pycache__", "build") or part.endswith(".egg-info")
                for part in path.parts
            ):
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                match = DEAD_REFERENCES.search(line)
                if match:
                    found.append(f"{path.relative_to(root)}:{number}: {match.group(0)}")
    return found


def _logger_name_is_scheme(call: ast.Call) -> bool:
    """``logging.getLogger("taskplane." + __name__)``."""
    if len(call.args) != 1:
        return False
    arg = call.args[0]
    return (
        isinstance(arg, ast.BinOp)
        and isinstance(arg.op, ast.Add)
        and isinstance(arg.left, ast.Constant)
        and arg.left.value == "taskplane."
        and isinstance(arg.right, ast.Name)
        and arg.right.id == "__name__"
    )


def stray_loggers(root: Path) -> list[str]:
    """``module:line`` for every ``logging.getLogger(`` outside ``registry/log.py``, save
    ttrpc's ``logging.getLogger("taskplane." + __name__)``."""
    found: list[str] = []
    for name, path in modules(root).items():
        if name == "registry.log":
            continue
        in_ttrpc = name == TTRPC or name.startswith(TTRPC + ".")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "logging"
            ):
                continue
            if in_ttrpc and _logger_name_is_scheme(node):
                continue
            found.append(f"{name}:{node.lineno}")
    return found


# -- the repository -----------------------------------------------------------------------------


def test_no_module_level_import_circle() -> None:
    assert import_circles(REPO) == []


def test_layers_point_one_way() -> None:
    assert layer_violations(REPO) == []


def test_no_module_over_600_lines_without_a_stated_reason() -> None:
    assert long_modules(REPO) == []


def test_no_reference_to_documents_outside_the_repository() -> None:
    assert dead_references(REPO) == []


def test_every_logger_is_under_taskplane() -> None:
    assert stray_loggers(REPO) == []


# -- the checkers catch what they name ----------------------------------------------------------


def plant(root: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_circle_is_found_and_type_checking_or_local_imports_are_not(
    tmp_path: Path,
) -> None:
    root = plant(
        tmp_path,
        {
            "registry/a.py": "from registry import b\n",
            "registry/b.py": "import registry.c\n",
            "registry/c.py": "try:\n    from .a import x\nexcept ImportError:\n    pass\n",
            "plugins/d.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from plugins import e\n",
            "plugins/e.py": "from plugins import d\n",
            "taskplane/f.py": "def g():\n    from taskplane import h\n",
            "taskplane/h.py": "import taskplane.f\n",
        },
    )
    assert import_circles(root) == [["registry.a", "registry.b", "registry.c"]]


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "registry/a.py": "def f():\n    from plugins import x\n",
            "plugins/b.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    import taskplane.cli\n",
            "runtime_v2/c.py": "from taskplane import containers\n",
            "runtime_v2/ttrpc/__init__.py": "from runtime_v2 import errdefs\n",
            "runtime_v2/ttrpc/_d.py": "from runtime_v2.ttrpc import _e\nimport registry\n",
            "taskplane/e.py": "import runtime_v2, plugins, registry\n",
        },
    )
    assert sorted(layer_violations(root)) == [
        "plugins.b imports taskplane.cli",
        "registry.a imports plugins",
        "registry.a imports plugins.x",
        "runtime_v2.c imports taskplane",
        "runtime_v2.c imports taskplane.containers",
        "runtime_v2.ttrpc imports runtime_v2.errdefs",
        "runtime_v2.ttrpc._d imports registry",
    ]


def test_a_planted_long_module_is_found_unless_it_says_why(tmp_path: Path) -> None:
    body = "x = 1\n" * MAX_LINES
    root = plant(
        tmp_path,
        {
            "plugins/long.py": '"""Many things."""\n' + body,
            "plugins/said.py": f'"""Many things.\n\n{LONG_REASON} it must be."""\n' + body,
            "plugins/short.py": body,
            "plugins/gen_pb2.py": body * 2,
        },
    )
    assert long_modules(root) == [f"plugins.long: {MAX_LINES + 1} lines"]


@pytest.mark.parametrize(
    "text",
    [
        "see spec" + " section 3.1",
        "as spec" + " 2.5 says",
        "users" + "-ask.md",
        "peers" + ".md",
        "runtime-v2" + ".md",
        "style" + ".md",
        "../" + "shared/" + "spec/peers",
    ],
)
def test_a_planted_dead_reference_is_found(tmp_path: Path, text: str) -> None:
    root = plant(tmp_path, {"tests/test_x.py": f"# {text}\n", "README.md": "fine\n"})
    assert [found.split(": ", 1)[0] for found in dead_references(root)] == ["tests/test_x.py:1"]


def test_the_upstream_binaries_are_not_a_dead_reference(tmp_path: Path) -> None:
    # ../shared/upstream holds containerd 2.4 and runc 1.5, a real prerequisite of the tests.
    root = plant(tmp_path, {"tests/test_x.py": "# ../shared/upstream/bin/ctr\n", "README.md": "\n"})
    assert dead_references(root) == []


def test_containerd_file_names_are_not_dead_references(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {"plugins/x.py": "# containerd core/runtime/v2/shim.go; the OCI runtime spec.\n"},
    )
    assert dead_references(root) == []


def test_a_planted_stray_logger_is_found(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "registry/log.py": "import logging\nlogging.getLogger('taskplane')\n",
            "plugins/a.py": "import logging\nlog = logging.getLogger(__name__)\n",
            "plugins/c.py": "import logging\nlog = logging.getLogger('taskplane.' + __name__)\n",
            "runtime_v2/ttrpc/_b.py": "import logging\n"
            "ok = logging.getLogger('taskplane.' + __name__)\n"
            "bad = logging.getLogger('runtime_v2.ttrpc')\n",
        },
    )
    assert stray_loggers(root) == ["plugins.a:2", "plugins.c:2", "runtime_v2.ttrpc._b:3"]

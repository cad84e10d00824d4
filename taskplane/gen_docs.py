"""Keep README.md's generated parts in step with the code: ``python -m taskplane.gen_docs``.

Two kinds of README blocks are generated:

- a fenced block whose info string has ``title="<path>"`` naming a file of the repository
  (``examples/embed.py``) holds that file's content, byte for byte;
- the block between ``<!-- BEGIN config default -->`` and ``<!-- END config default -->`` holds
  the output of ``taskplane config default``.

``--check`` rewrites nothing and exits 1 when the README is out of date (the tests use
:func:`render` the same way).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["FENCE", "main", "render"]

REPO = Path(__file__).resolve().parent.parent

#: A fenced code block: opening fence with its info string, the body, the closing fence.
FENCE = re.compile(
    r"^(?P<fence>```+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL
)
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')
_CONFIG_BLOCK = re.compile(
    r"(<!-- BEGIN config default -->\n```toml\n)(?P<body>.*?)(```\n<!-- END config default -->)",
    re.DOTALL,
)


def render(
    readme: str, *, repo: Path = REPO, config_default: Callable[[], str] | None = None
) -> str:
    """Return ``readme`` with every generated block regenerated."""

    def file_block(match: re.Match[str]) -> str:
        title = _TITLE.search(match["info"])
        if title is None:
            return match[0]
        path = repo / title["title"]
        if not path.is_file():
            return match[0]
        body = path.read_text()
        if not body.endswith("\n"):
            body += "\n"
        return f"{match['fence']}{match['info']}\n{body}{match['fence']}"

    out = FENCE.sub(file_block, readme)
    if config_default is None:
        from taskplane.cli_config import default_toml

        config_default = default_toml
    text = config_default()
    return _CONFIG_BLOCK.sub(lambda m: m[1] + text + m[3], out)


def main(argv: Sequence[str] | None = None) -> int:
    """Regenerate README.md in place (or, with ``--check``, report whether it is current)."""
    parser = argparse.ArgumentParser(prog="python -m taskplane.gen_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = parser.parse_args(argv)
    current = args.readme.read_text()
    fresh = render(current, repo=args.readme.resolve().parent)
    if fresh == current:
        return 0
    if args.check:
        print(f"{args.readme} is out of date: run python -m taskplane.gen_docs", file=sys.stderr)
        return 1
    args.readme.write_text(fresh)
    print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

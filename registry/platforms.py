"""Container platforms: parse, normalize, format and match ``os/arch/variant`` specifiers.

A port of containerd's ``platforms`` package. A *specifier* is user input in the form
``<os>|<arch>|<os>/<arch>[/<variant>]``; the OS component may carry an OS version in
parentheses (``windows(10.0.17763)/amd64``). A missing component is taken from this host::

    >>> from registry import platforms
    >>> platforms.format(platforms.parse("linux/aarch64"))
    'linux/arm64'
    >>> platforms.only(platforms.parse("linux/amd64")).match(platforms.parse("linux/386"))
    True

Normalization (as containerd): ``aarch64`` -> ``arm64`` (variant ``v8`` dropped), ``x86_64`` /
``x86-64`` -> ``amd64`` (variant ``v1`` dropped), ``i386`` -> ``386``, ``armhf`` -> ``arm/v7``,
``armel`` -> ``arm/v6``, ``arm`` variants ``5``/``6``/``7``/``8`` -> ``v5``..``v8`` (``arm`` alone
is ``arm/v7``), ``macos`` -> ``darwin``, OS and architecture are case-insensitive. taskplane also
accepts the ``uname -m`` spellings ``armv5l``/``armv6l``/``armv7l``/``armv8l`` and
``i486``/``i586``/``i686``.
"""

from __future__ import annotations

import functools
import platform as _pyplatform
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from registry._config_text import quote
from registry._lazy import export_lazily

if TYPE_CHECKING:
    from registry._platform_match import ALL, Matcher

__all__ = [
    "ALL",
    "Matcher",
    "Platform",
    "PlatformError",
    "default",
    "default_spec",
    "default_string",
    "format",
    "format_all",
    "is_known_arch",
    "is_known_os",
    "new_matcher",
    "normalize",
    "only",
    "only_strict",
    "ordered",
    "parse",
    "parse_all",
]

# Go's GOOS/GOARCH lists (go/build/syslist.go), as containerd's database.go.
_KNOWN_OS = frozenset(
    {
        "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
        "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
    }
)  # fmt: skip
_KNOWN_ARCH = frozenset(
    {
        "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
        "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
        "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
    }
)  # fmt: skip

_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_OS_AND_VERSION_RE = re.compile(r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?$")
_SPECIFIER_SYNTAX = "<os>|<arch>|<os>/<arch>[/<variant>]"


class PlatformError(ValueError):
    """A platform specifier that cannot be parsed; the message names the specifier."""

    def __init__(self, specifier: str, reason: str) -> None:
        super().__init__(f"invalid platform {quote(specifier)}: {reason}")
        self.specifier = specifier
        self.reason = reason


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class Platform:
    """An OCI platform: operating system, CPU architecture and optional variant.

    Values are stored as given; use :func:`normalize` for the canonical form.
    """

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def __str__(self) -> str:
        return format(self)


def is_known_os(os: str) -> bool:
    """Whether *os* (already normalized) is an operating system Go knows."""
    return os in _KNOWN_OS


def is_known_arch(arch: str) -> bool:
    """Whether *arch* (already normalized) is an architecture Go knows."""
    return arch in _KNOWN_ARCH


def _normalize_os(os: str) -> str:
    if not os:
        return _host_os()
    os = os.lower()
    return "darwin" if os == "macos" else os


# uname -m spellings of 32-bit arm and x86 that containerd does not list (taskplane extension).
_UNAME_ARCH: dict[str, tuple[str, str]] = {
    "armv5l": ("arm", "v5"),
    "armv5tel": ("arm", "v5"),
    "armv6l": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv8l": ("arm", "v8"),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
}


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch, variant = arch.lower(), variant.lower()
    if arch in _UNAME_ARCH and not variant:
        return _UNAME_ARCH[arch]
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "8.0", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


def normalize(platform: Platform) -> Platform:
    """Return the canonical form of *platform* (e.g. ``Aarch64`` -> ``arm64``).

    >>> normalize(Platform("Linux", "x86_64"))
    Platform(os='linux', architecture='amd64', variant='', os_version='', os_features=())
    """
    arch, variant = _normalize_arch(platform.architecture, platform.variant)
    return attrs.evolve(platform, os=_normalize_os(platform.os), architecture=arch, variant=variant)


def parse(specifier: str) -> Platform:
    """Parse a platform specifier (``linux``, ``arm64``, ``linux/arm/v7``, ...).

    A single component is an OS if it is a known one (architecture from this host), else a
    known architecture (OS from this host). As in containerd the result is not fully
    normalized: ``linux/arm`` keeps an empty variant (``arm/v7`` is implied) and
    ``linux/arm64/v8`` keeps ``v8``; :func:`normalize` and the matchers canonicalize.
    Raises :class:`PlatformError` naming the specifier.
    """
    if not isinstance(specifier, str):
        raise PlatformError(repr(specifier), f"expected a string, got {type(specifier).__name__}")
    if not specifier:
        raise PlatformError(specifier, f"empty specifier (expected {_SPECIFIER_SYNTAX})")
    if "*" in specifier:
        raise PlatformError(specifier, "wildcards are not supported")
    parts = specifier.split("/")
    if len(parts) > 3:
        raise PlatformError(
            specifier, f"too many components: {len(parts)} (expected {_SPECIFIER_SYNTAX})"
        )
    os_match = _OS_AND_VERSION_RE.match(parts[0])
    if os_match is None:
        raise PlatformError(
            specifier,
            f"{quote(parts[0])} is not a valid OS component "
            "(letters, digits, '_' and '-', optionally followed by a version in parentheses)",
        )
    for part in parts[1:]:
        if not _COMPONENT_RE.match(part):
            raise PlatformError(
                specifier,
                f"{quote(part)} is not a valid component (letters, digits, '_', '.' and '-')",
            )
    os = _normalize_os(os_match.group(1))
    os_version = os_match.group(2) or ""

    if len(parts) == 1:
        if is_known_os(os):
            arch = _host_arch()
            variant = ""
            if arch == "arm" and _cpu_variant() != "v7":
                variant = _cpu_variant()
            return Platform(os, arch, variant, os_version)
        arch, variant = _normalize_arch(parts[0], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        if is_known_arch(arch):
            return Platform(_host_os(), arch, variant)
        raise PlatformError(specifier, "unknown operating system or architecture")
    if len(parts) == 2:
        # os/arch pairs are taken as given: we do not insist on knowing the platform.
        arch, variant = _normalize_arch(parts[1], "")
        if arch == "arm" and variant == "v7":
            variant = ""
        return Platform(os, arch, variant, os_version)
    arch, variant = _normalize_arch(parts[1], parts[2])
    if arch == "arm64" and not variant:
        variant = "v8"
    return Platform(os, arch, variant, os_version)


def parse_all(specifiers: Iterable[str]) -> list[Platform]:
    """Parse every specifier; the first bad one raises :class:`PlatformError`."""
    return [parse(s) for s in specifiers]


def format(platform: Platform) -> str:
    """Format *platform* as a specifier, ``os/arch[/variant]`` (``unknown`` without an OS)."""
    if not platform.os:
        return "unknown"
    return "/".join(p for p in (platform.os, platform.architecture, platform.variant) if p)


def format_all(platform: Platform) -> str:
    """Like :func:`format`, with the OS version: ``windows(10.0.17763)/amd64``."""
    if not platform.os:
        return "unknown"
    os = f"{platform.os}({platform.os_version})" if platform.os_version else platform.os
    return "/".join(p for p in (os, platform.architecture, platform.variant) if p)


@functools.cache
def _host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "win32":
        return "windows"
    if sys.platform.startswith("freebsd"):
        return "freebsd"
    return sys.platform.lower()


@functools.cache
def _host_arch() -> str:
    machine = _pyplatform.machine().lower()
    if machine.startswith("arm") and machine != "arm64":
        return "arm"
    return _normalize_arch(machine, "")[0]


def _variant_from_cpuinfo(value: str) -> str:
    value = value.strip().lower()
    if value in ("8", "aarch64"):
        return "v8"
    if value in ("7", "7m", "?(12)", "?(13)", "?(14)", "?(15)", "?(16)", "?(17)"):
        return "v7"
    if value in ("6", "6tej"):
        return "v6"
    if value in ("5", "5t", "5te", "5tej"):
        return "v5"
    if value in ("4", "4t"):
        return "v4"
    if value == "3":
        return "v3"
    return "unknown"


@functools.cache
def _cpu_variant() -> str:
    """The ARM variant of this host ("" off ARM), from /proc/cpuinfo or ``uname -m``."""
    if _host_arch() not in ("arm", "arm64"):
        return ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() == "cpu architecture":
                    return _variant_from_cpuinfo(value)
    except OSError:
        pass
    machine = _pyplatform.machine().lower()
    if machine == "aarch64":
        return "v8"
    if machine.startswith("armv") and len(machine) >= 5:
        return _variant_from_cpuinfo(machine[4])
    return "unknown"


def default_spec() -> Platform:
    """This host's platform (variant set on ARM only), like containerd's ``DefaultSpec``."""
    return Platform(_host_os(), _host_arch(), _cpu_variant())


def default_string() -> str:
    """This host's platform as a specifier, e.g. ``linux/amd64``."""
    return format(default_spec())


# Matcher and ALL are defined on first use (PEP 562): booting reads and formats platforms
# but matches none, so no command builds the matcher class.
__getattr__ = export_lazily(
    __name__, {"ALL": "registry._platform_match", "Matcher": "registry._platform_match"}
)


def new_matcher(platform: Platform) -> Matcher:
    """A matcher for exactly *platform* (normalized), no compatible platforms."""
    from registry._platform_match import Matcher

    return Matcher((normalize(platform),))


def ordered(*platforms: Platform) -> Matcher:
    """A matcher for any of *platforms*, preferring them in the order given."""
    from registry._platform_match import Matcher

    return Matcher(tuple(normalize(p) for p in platforms))


def only_strict(platform: Platform) -> Matcher:
    """Like :func:`only` without the compatible platforms (``amd64`` does not match ``386``)."""
    return new_matcher(platform)


def _variant_number(variant: str) -> int | None:
    digits = variant.removeprefix("v")
    return int(digits) if digits.isdigit() else None


def _platform_vector(p: Platform) -> list[Platform]:
    """*p* followed by the platforms it can also run, best first (containerd's rules)."""
    vector = [p]

    def same(arch: str, variant: str) -> Platform:
        return attrs.evolve(p, architecture=arch, variant=variant)

    if p.architecture == "amd64":
        level = _variant_number(p.variant)
        if level is not None and level > 1:
            vector += [same("amd64", f"v{v}") for v in range(level - 1, 0, -1)]
        vector.append(same("386", ""))
    elif p.architecture == "arm":
        level = _variant_number(p.variant)
        if level is not None and level > 5:
            vector += [same("arm", f"v{v}") for v in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_s, has_minor, minor_s = variant.partition(".")
        major = _variant_number(major_s)
        if major is not None and major >= 8:
            minor = int(minor_s) if has_minor and len(variant) == 4 and minor_s.isdigit() else 0

            def arm64(major: int, minor: int) -> Platform:
                return same("arm64", f"v{major}" if minor == 0 else f"v{major}.{minor}")

            if major == 9:
                vector += [arm64(9, m) for m in range(minor - 1, -1, -1)]
                # v9.0 diverged from v8.5: v9.x runs v8.{x+5} and below, up to v8.9.
                minor = min(minor + 5, 9)
                major = 8
                vector.append(same("arm64", f"v8.{minor}"))
            vector += [arm64(major, m) for m in range(minor - 1, -1, -1)]
        # Every arm64 runs 32-bit arm/v8 and below.
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        vector += _platform_vector(same("arm", variant))
    return vector


def only(platform: Platform) -> Matcher:
    """A matcher for *platform* and the platforms it can also run, preferring exact matches.

    ``amd64`` also matches ``386``; ``arm/v7`` matches ``arm/v6`` and ``arm/v5``; ``arm64``
    matches ``arm/v8`` .. ``arm/v5``; ``arm64/v9.x`` matches ``v9.0``.. and ``v8.{x+5}``...
    """
    return ordered(*_platform_vector(normalize(platform)))


def default() -> Matcher:
    """The matcher for this host: ``only(default_spec())``."""
    return only(default_spec())

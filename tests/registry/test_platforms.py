"""registry.platforms: containerd's platform specifiers, normalization and matching."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry import platforms
from registry.platforms import Platform, PlatformError

HOST = platforms.default_spec()

# (specifier, expected format_all(parse(specifier))); "{os}"/"{arch}" are this host's.
VALID = [
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/x86-64", "linux/amd64"),
    ("LINUX/AMD64", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"),
    ("linux/amd64/v2", "linux/amd64/v2"),
    ("linux/amd64/v3", "linux/amd64/v3"),
    ("linux/i386", "linux/386"),
    ("linux/386", "linux/386"),
    ("linux/arm64", "linux/arm64"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64/v8"),  # containerd keeps an explicit v8 when parsing
    ("linux/aarch64/8", "linux/arm64/v8"),
    ("linux/arm64/v8.2", "linux/arm64/v8.2"),
    ("linux/arm64/v9", "linux/arm64/v9"),
    ("linux/arm", "linux/arm"),
    ("linux/arm/v7", "linux/arm/v7"),
    ("linux/arm/7", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/arm/6", "linux/arm/v6"),
    ("linux/arm/5", "linux/arm/v5"),
    ("linux/arm/v8", "linux/arm/v8"),
    ("linux/armhf", "linux/arm"),  # arm/v7 is written "arm" when parsed
    ("linux/armel", "linux/arm/v6"),
    ("linux/armv7l", "linux/arm"),
    ("linux/armv6l", "linux/arm/v6"),
    ("linux/i686", "linux/386"),
    ("linux/ppc64le", "linux/ppc64le"),
    ("linux/s390x", "linux/s390x"),
    ("linux/riscv64", "linux/riscv64"),
    ("linux/unknownarch", "linux/unknownarch"),  # os/arch pairs are not checked
    ("macos/arm64", "darwin/arm64"),
    ("darwin/amd64", "darwin/amd64"),
    ("Windows/amd64", "windows/amd64"),
    ("windows(10.0.17763)/amd64", "windows(10.0.17763)/amd64"),
    ("freebsd/amd64", "freebsd/amd64"),
    ("amd64", "{os}/amd64"),
    ("x86_64", "{os}/amd64"),
    ("aarch64", "{os}/arm64"),
    ("arm64", "{os}/arm64"),
    ("armhf", "{os}/arm"),
    ("armel", "{os}/arm/v6"),
    ("i386", "{os}/386"),
    ("riscv64", "{os}/riscv64"),
    ("linux", "linux/{arch}"),
    ("Linux", "linux/{arch}"),
    ("windows", "windows/{arch}"),
    ("macos", "darwin/{arch}"),
    ("windows(10.0)", "windows(10.0)/{arch}"),
]

INVALID = [
    ("", "empty specifier"),
    ("linux/amd64/v2/extra", "too many components"),
    ("linux/amd64/v2/extra/more", "too many components"),
    ("linux/*", "wildcards are not supported"),
    ("*", "wildcards are not supported"),
    ("nonsense", "unknown operating system or architecture"),
    ("linux64", "unknown operating system or architecture"),
    ("linux/", '"" is not a valid component'),
    ("/amd64", '"" is not a valid OS component'),
    ("linux//v7", '"" is not a valid component'),
    ("linux/amd 64", '"amd 64" is not a valid component'),
    ("lin.ux/amd64", '"lin.ux" is not a valid OS component'),
    ("windows(10.0/amd64", '"windows(10.0" is not a valid OS component'),
    ("linux/arm/v7+", '"v7+" is not a valid component'),
]


def _expand(expected: str) -> str:
    arch = HOST.architecture
    if arch == "arm" and expected.endswith("{arch}"):
        arch += f"/{HOST.variant}"  # a bare OS on an arm host carries the host's cpu variant
    return expected.replace("{os}", HOST.os).replace("{arch}", arch)


@pytest.mark.parametrize(("specifier", "expected"), VALID)
def test_parse_valid_specifier(specifier: str, expected: str) -> None:
    assert platforms.format_all(platforms.parse(specifier)) == _expand(expected)


@pytest.mark.parametrize(("specifier", "reason"), INVALID)
def test_parse_invalid_specifier_names_it(specifier: str, reason: str) -> None:
    with pytest.raises(PlatformError) as info:
        platforms.parse(specifier)
    message = str(info.value)
    assert message.startswith(f'invalid platform "{specifier}": ')
    assert reason in message
    assert isinstance(info.value, ValueError)
    assert info.value.specifier == specifier


def test_parse_error_example_from_the_brief() -> None:
    with pytest.raises(PlatformError, match=r'^invalid platform "linux/amd64/v2/extra": '):
        platforms.parse("linux/amd64/v2/extra")


def test_parse_rejects_non_string() -> None:
    with pytest.raises(PlatformError, match="expected a string"):
        platforms.parse(7)  # type: ignore[arg-type]


def test_parse_keeps_os_version() -> None:
    p = platforms.parse("windows(10.0.17763)/amd64")
    assert p == Platform("windows", "amd64", os_version="10.0.17763")
    assert platforms.format(p) == "windows/amd64"


def test_parse_all_parses_in_order_and_names_the_bad_one() -> None:
    assert platforms.parse_all(["linux/amd64", "linux/arm64"]) == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
    ]
    with pytest.raises(PlatformError, match='"linux/\\*"'):
        platforms.parse_all(["linux/amd64", "linux/*"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (Platform("Linux", "x86_64"), Platform("linux", "amd64")),
        (Platform("linux", "amd64", "v1"), Platform("linux", "amd64")),
        (Platform("linux", "aarch64", "v8"), Platform("linux", "arm64")),
        (Platform("linux", "arm64", "V8"), Platform("linux", "arm64")),
        (Platform("linux", "arm64", "v8.0"), Platform("linux", "arm64")),
        (Platform("linux", "arm64", "9"), Platform("linux", "arm64", "v9")),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7")),
        (Platform("linux", "arm", "6"), Platform("linux", "arm", "v6")),
        (Platform("linux", "armhf"), Platform("linux", "arm", "v7")),
        (Platform("linux", "armel"), Platform("linux", "arm", "v6")),
        (Platform("linux", "i386", "x"), Platform("linux", "386")),
        (Platform("macOS", "arm64"), Platform("darwin", "arm64")),
        (Platform("", "amd64"), Platform(HOST.os, "amd64")),
    ],
)
def test_normalize(given: Platform, expected: Platform) -> None:
    assert platforms.normalize(given) == expected


def test_format_without_os_is_unknown() -> None:
    assert platforms.format(Platform("", "amd64")) == "unknown"
    assert platforms.format_all(Platform("", "amd64")) == "unknown"
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"


def test_default_spec_is_this_host() -> None:
    spec = platforms.default_spec()
    assert platforms.is_known_os(spec.os)
    assert platforms.is_known_arch(spec.architecture)
    assert platforms.default_string() == platforms.format(spec)
    assert platforms.default().match(spec)
    assert platforms.parse(platforms.default_string()).os == spec.os


@pytest.mark.parametrize(
    ("want", "candidate", "matches"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/x86_64", True),
        ("linux/amd64", "linux/386", True),
        ("linux/amd64", "linux/arm64", False),
        ("linux/amd64", "windows/amd64", False),
        ("linux/amd64/v3", "linux/amd64/v2", True),
        ("linux/amd64/v3", "linux/amd64", True),
        ("linux/amd64/v2", "linux/amd64/v3", False),
        ("linux/386", "linux/amd64", False),
        ("linux/arm64", "linux/arm64/v8", True),
        ("linux/arm64", "linux/arm/v8", True),
        ("linux/arm64", "linux/arm/v7", True),
        ("linux/arm64", "linux/arm", True),
        ("linux/arm64", "linux/arm/v6", True),
        ("linux/arm64", "linux/arm/v5", True),
        ("linux/arm64", "linux/arm64/v8.1", False),
        ("linux/arm64/v8.2", "linux/arm64/v8.1", True),
        ("linux/arm64/v8.2", "linux/arm64", True),
        ("linux/arm64/v9.1", "linux/arm64/v9", True),
        ("linux/arm64/v9.1", "linux/arm64/v8.6", True),
        ("linux/arm64/v9.1", "linux/arm64/v8.7", False),
        ("linux/arm64/v9.1", "linux/arm/v7", True),
        ("linux/arm/v7", "linux/arm/v6", True),
        ("linux/arm/v7", "linux/arm/v5", True),
        ("linux/arm/v7", "linux/arm/v8", False),
        ("linux/arm/v7", "linux/arm64", False),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm/v5", "linux/arm/v6", False),
        ("linux/ppc64le", "linux/ppc64le", True),
    ],
)
def test_only_matches_compatible_platforms(want: str, candidate: str, matches: bool) -> None:
    matcher = platforms.only(platforms.parse(want))
    assert matcher.match(platforms.parse(candidate)) is matches


def test_only_strict_does_not_match_compatible_platforms() -> None:
    strict = platforms.only_strict(platforms.parse("linux/amd64"))
    assert strict.match(platforms.parse("linux/x86_64"))
    assert not strict.match(platforms.parse("linux/386"))
    assert not platforms.only_strict(Platform("linux", "arm", "v7")).match(
        Platform("linux", "arm", "v6")
    )


def test_only_prefers_the_exact_platform() -> None:
    matcher = platforms.only(platforms.parse("linux/arm/v7"))
    v7, v6, v5 = (Platform("linux", "arm", v) for v in ("v7", "v6", "v5"))
    other = Platform("linux", "amd64")
    assert matcher.less(v7, v6)
    assert matcher.less(v6, v5)
    assert not matcher.less(v5, v7)
    assert matcher.less(v5, other)
    assert not matcher.less(other, v5)

    def compare(a: Platform, b: Platform) -> int:
        return -1 if matcher.less(a, b) else 1 if matcher.less(b, a) else 0

    by_preference = functools.cmp_to_key(compare)
    assert sorted([other, v5, v7, v6], key=by_preference) == [v7, v6, v5, other]


def test_ordered_matcher_prefers_in_given_order() -> None:
    matcher = platforms.ordered(Platform("linux", "arm64"), Platform("linux", "amd64"))
    assert matcher.less(Platform("linux", "aarch64"), Platform("linux", "amd64"))
    assert not matcher.match(Platform("linux", "386"))


def test_all_matches_everything() -> None:
    assert platforms.ALL.match(Platform("plan9", "mips"))
    assert not platforms.ALL.less(Platform("linux", "amd64"), Platform("linux", "386"))


def test_known_os_and_arch_lists() -> None:
    assert platforms.is_known_os("linux") and not platforms.is_known_os("Linux")
    assert platforms.is_known_arch("amd64") and not platforms.is_known_arch("x86_64")


_component = st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True)
_specifier = st.one_of(
    st.sampled_from([s for s, _ in VALID]),
    st.builds(lambda o, a: f"{o}/{a}", _component, _component),
    st.builds(lambda o, a, v: f"{o}/{a}/{v}", _component, _component, _component),
)


@given(_specifier)
def test_format_parse_round_trip_is_stable(specifier: str) -> None:
    first = platforms.parse(specifier)
    again = platforms.parse(platforms.format_all(first))
    assert again == first
    assert platforms.format_all(again) == platforms.format_all(first)


@given(_specifier)
def test_normalize_is_idempotent(specifier: str) -> None:
    once = platforms.normalize(platforms.parse(specifier))
    assert platforms.normalize(once) == once
    assert platforms.only(once).match(once)

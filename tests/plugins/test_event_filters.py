"""containerd's filter language (plugins.filters) and the exchange's subscriptions that use it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from plugins import filters
from plugins.errdefs import InvalidArgument
from plugins.events import Exchange, Subscription
from runtime_v2.api import events_pb2

NS = "default"
T = 5.0  # stops a hung test only

_FIELDS = {
    ("name",): "foo",
    ("labels", "bar"): "baz",
    ("labels", "very complex label"): "x, y",
    ("empty",): "",
    ("path",): "/a/c",
}


def _field(path: Sequence[str]) -> tuple[str, bool]:
    value = _FIELDS.get(tuple(path))
    return (value, bool(value)) if value is not None else ("", False)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("", True),
        ("name", True),
        ("missing", False),
        ("empty", False),  # present means not empty, as containerd's adaptors say
        ("name==foo", True),
        ("name==bar", False),
        ("name!=bar", True),
        ("missing!=bar", True),  # != matches an absent field (containerd)
        ("name~=^f", True),
        ("name~=o", True),  # searched anywhere, as Go's MatchString
        ("name~=/^fo+$/", True),
        ("name~=|^x|", False),
        ('name~="f.o"', True),
        ("name==foo,labels.bar", True),
        ("name==foo,labels.nope", False),
        ("name==foo , labels.bar==baz", True),
        ('labels."very complex label"=="x, y"', True),
        ("labels.'very complex label'~=y$", True),
        ('name=="fo\\x6f"', True),  # Go string escapes in quotes
        ("path==/a/c", True),  # after == a slash is a plain character
        ("path==/a/b", False),
    ],
)
def test_a_filter_matches_as_containerds(text: str, matches: bool) -> None:
    assert filters.parse(text).match(_field) is matches


def test_several_filters_match_when_any_does() -> None:
    assert filters.parse_all(["name==bar", "labels.bar==baz"])(_field)
    assert not filters.parse_all(["name==bar", "labels.bar==nope"])(_field)
    assert filters.parse_all([])(_field)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name==", "filters: parse error: [name==]: expected value or quoted"),
        ("name=foo", 'filters: parse error: [name >|=|< foo]: expected an operator ("=="|'),
        ("name==a b", "filters: parse error: [name==a  >|b|< ]: unexpected input: b"),
        ("1name", "filters: parse error: [ >|1|< name]: expected field or quoted"),
        ('name=="open', 'filters: parse error: [name== >|"|< open]: quoted literal not'),
        ("name~=(", "filters: parse error: [name~= >|(|< ]: invalid regular expression '('"),
        ("name,", "filters: parse error: [name,]: expected field or quoted"),
    ],
)
def test_a_malformed_filter_is_an_invalid_argument_saying_where(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        filters.parse(text)
    assert str(caught.value).startswith(message)


def test_a_filter_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="a filter must be a string, not int"):
        filters.parse(3)  # type: ignore[arg-type]


# -- the exchange ---------------------------------------------------------------------------


async def _drain(sub: Subscription) -> list[tuple[str, str, str]]:
    got = []
    while sub.pending():
        e = await sub.get(timeout=T)
        got.append((e.namespace, e.topic, getattr(e.event, "container_id", "")))
    return got


async def _publish_some(exchange: Exchange) -> None:
    await exchange.publish("/tasks/oom", events_pb2.TaskOOM(container_id="web"), namespace=NS)
    exit_ = events_pb2.TaskExit(container_id="db", exit_status=3)
    await exchange.publish("/tasks/exit", exit_, namespace="other")
    await exchange.publish("/snapshot/remove", events_pb2.TaskOOM(container_id="web"), namespace=NS)


@pytest.mark.parametrize(
    ("subscribed", "expected"),
    [
        (('topic~="/tasks/"',), [(NS, "/tasks/oom", "web"), ("other", "/tasks/exit", "db")]),
        (("namespace==other",), [("other", "/tasks/exit", "db")]),
        (
            ("event.container_id==web",),
            [(NS, "/tasks/oom", "web"), (NS, "/snapshot/remove", "web")],
        ),
        (("topic==/tasks/oom,event.container_id==web",), [(NS, "/tasks/oom", "web")]),
        (("event.exit_status==3",), [("other", "/tasks/exit", "db")]),
        (("event.nope",), []),
        (("event",), []),  # the event itself is not a field
        (  # a topic form and a containerd filter: either matches
            ("/snapshot/*", "namespace==other"),
            [("other", "/tasks/exit", "db"), (NS, "/snapshot/remove", "web")],
        ),
    ],
)
async def test_subscriptions_take_containerds_filters(
    subscribed: tuple[str, ...], expected: list[tuple[str, str, str]]
) -> None:
    exchange = Exchange()
    async with exchange.subscribe(*subscribed) as sub:
        await _publish_some(exchange)
        assert await _drain(sub) == expected


async def test_a_filter_and_the_namespace_argument_both_apply() -> None:
    exchange = Exchange()
    async with exchange.subscribe('topic~="/tasks/"', namespace=NS) as sub:
        await _publish_some(exchange)
        assert await _drain(sub) == [(NS, "/tasks/oom", "web")]


def test_subscribe_refuses_a_malformed_containerd_filter() -> None:
    with pytest.raises(InvalidArgument, match=r"filters: parse error: \[topic >\|=\|< /x\]"):
        Exchange().subscribe("topic=/x")

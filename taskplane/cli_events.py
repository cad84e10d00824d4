"""``taskplane events``: print events as they happen, one per line, until interrupted.

It boots the registry like every command and subscribes to the event exchange, so it sees the
events of every task in the state dir whichever process the shims forward them to (the exchange
follows the state dir's event journal; see :mod:`plugins.events`). Each line is::

    2026-11-30T09:00:00.123456Z default /tasks/exit container_id=web id=web pid=4242 ...

timestamp, namespace, topic, then the event's fields by name (protobuf field names, every field
including zero values; strings with spaces or quotes are JSON-quoted, nested values are
compact JSON). ``--json`` prints JSON lines instead: ``timestamp``, ``namespace``, ``topic``,
``type`` and ``event`` (the fields as an object; ``null`` with the raw ``value`` in base64 for a
type taskplane does not know). Filters select events, as ``ctr events`` takes them: arguments
in containerd's filter language (``'topic~="/tasks/"'``, ``namespace==default``,
``event.container_id==web``, comma-separated selectors all matching) or a topic or prefix
(``/tasks/*``); ``--topic`` (repeatable) keeps a topic or a prefix. An event is printed when any
filter matches, and only events of ``--namespace`` are, unless ``--all-namespaces``. Ctrl-C ends
it with status 130 and SIGTERM with 143, quietly. The journal's warnings (a damaged record
skipped, events possibly missed) go to stderr whatever ``--log-level`` says.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import re
import signal
import sys
from typing import TYPE_CHECKING, Any

from registry.log import get_logger
from taskplane.cli_common import Options
from taskplane.errors import EXIT_INTERRUPTED

if TYPE_CHECKING:
    from plugins.events import EventEnvelope

__all__ = [
    "event_fields",
    "events",
    "format_human",
    "format_json",
    "register",
    "show_journal_warnings",
]

log = get_logger(__name__)

_PLAIN = re.compile(r"^[^\s\"'=]+$")


def event_fields(envelope: EventEnvelope) -> dict[str, Any] | None:
    """The event's fields by name (zero values included), or None for an undecoded ``Any``."""
    from google.protobuf import any_pb2, json_format

    if isinstance(envelope.event, any_pb2.Any):
        return None
    fields: dict[str, Any] = json_format.MessageToDict(
        envelope.event,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    # In the message's field order (MessageToDict puts the zero values last).
    order = [field.name for field in envelope.event.DESCRIPTOR.fields]
    return {name: fields[name] for name in order if name in fields}


def _timestamp(envelope: EventEnvelope) -> str:
    return str(envelope.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if _PLAIN.match(value) else json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def format_human(envelope: EventEnvelope) -> str:
    """One line: timestamp, namespace, topic, then ``name=value`` for every field."""
    head = f"{_timestamp(envelope)} {envelope.namespace} {envelope.topic}"
    fields = event_fields(envelope)
    if fields is None:
        any_ = envelope.as_any()
        return f"{head} type={_value(any_.type_url)} value={base64.b64encode(any_.value).decode()}"
    return " ".join([head, *(f"{name}={_value(value)}" for name, value in fields.items())])


def format_json(envelope: EventEnvelope) -> str:
    """One JSON object: timestamp, namespace, topic, type and the event's fields."""
    fields = event_fields(envelope)
    record: dict[str, Any] = {
        "timestamp": _timestamp(envelope),
        "namespace": envelope.namespace,
        "topic": envelope.topic,
        "type": envelope.type_url,
        "event": fields,
    }
    if fields is None:
        record["value"] = base64.b64encode(envelope.as_any().value).decode()
    return json.dumps(record, separators=(",", ":"))


def show_journal_warnings() -> None:
    """Let the exchange's and the journal's warnings through whatever the log level: a reader
    of the event stream must not take a stream with a gap for a complete one."""
    for name in ("plugins.events", "plugins.events_journal"):
        logger = get_logger(name)
        if not logger.isEnabledFor(logging.WARNING):
            logger.setLevel(logging.WARNING)


def register(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``taskplane events``."""
    parser.add_argument(
        "filters",
        metavar="FILTER",
        nargs="*",
        help='containerd filters such as topic~="/tasks/" or event.container_id==web, or a'
        " topic or prefix (/tasks/*); an event is printed when any filter matches",
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument(
        "--topic",
        metavar="TOPIC",
        action="append",
        default=[],
        help="only this topic, or topics under a prefix such as /tasks/* (repeatable)",
    )
    parser.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="events of every namespace, not only --namespace's",
    )
    parser.set_defaults(handler=events)


def events(opts: Options, args: argparse.Namespace) -> int:
    """``taskplane events``: print events as they happen until interrupted."""
    from plugins import identifiers
    from plugins.events import EventsDropped, Exchange, validate_filter, validate_topic_filter
    from plugins.types import EVENT_PLUGIN, SHIM_PLUGIN
    from runtime_v2.api import events_pb2  # noqa: F401 - registers containerd's event types
    from runtime_v2.shim_manager import ShimManager

    for topic in args.topic:
        validate_topic_filter(topic)
    for text in args.filters:
        validate_filter(text)
    topics: list[str] = [*args.topic, *args.filters]
    namespace = None if args.all_namespaces else opts.namespace
    if namespace is not None:
        identifiers.validate_namespace(namespace)
    render = format_json if args.json else format_human
    stopped_by: list[int] = []
    show_journal_warnings()

    async def main() -> int:
        host = await opts.boot_async()
        try:
            # Long-lived: serve the shims' events address, or watch the peer that serves it
            # and take over when it dies, from now on (not only from a first shim).
            await host.get(SHIM_PLUGIN, "manager", ShimManager).start_events_server()
            exchange = host.get(EVENT_PLUGIN, "exchange", Exchange)
            loop = asyncio.get_running_loop()
            subscription = None

            def stop(signum: int) -> None:
                stopped_by.append(signum)
                if subscription is not None:
                    subscription.close()

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop, signum)
            subscription = exchange.subscribe(*topics, namespace=namespace)
            journal = exchange.journal
            log.info("following events in %s", journal.path if journal else "this process only")
            while True:
                try:
                    async for envelope in subscription:
                        print(render(envelope), flush=True)
                    break  # closed by a signal, or the exchange closed
                except EventsDropped as exc:
                    # Printing could not keep up. A new subscription first, so the gap is no
                    # longer than it must be; then say so.
                    subscription = exchange.subscribe(*topics, namespace=namespace)
                    print(f"taskplane: {exc}", file=sys.stderr, flush=True)
            return 128 + stopped_by[0] if stopped_by else 0
        finally:
            await host.aclose()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:  # before the handlers were installed: still quiet
        return EXIT_INTERRUPTED

"""One event as the event journal stores it (:mod:`plugins.events_journal`): a JSON line.

A module of its own so that the class (and json, base64) is loaded by the first event appended
or read, not by every command that boots the exchange.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

import attrs

__all__ = ["Record"]


@attrs.frozen
class Record:
    """One event as stored in the journal."""

    origin: str
    timestamp: datetime
    namespace: str
    topic: str
    type_url: str
    value: bytes

    def to_line(self) -> bytes:
        """Encode as one JSON line (ending in a newline)."""
        data = {
            "origin": self.origin,
            "timestamp": self.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "namespace": self.namespace,
            "topic": self.topic,
            "type_url": self.type_url,
            "value": base64.b64encode(self.value).decode("ascii"),
        }
        return json.dumps(data, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Record:
        """Decode a line written by :meth:`to_line`; ValueError says what is wrong with it."""
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fields = {}
        for name in ("origin", "timestamp", "namespace", "topic", "type_url", "value"):
            value = data.get(name)
            if not isinstance(value, str):
                raise ValueError(f"field {name!r} is missing or not a string")
            fields[name] = value
        try:
            if not fields["timestamp"].endswith("Z"):
                raise ValueError
            timestamp = datetime.fromisoformat(fields["timestamp"])
        except ValueError:
            raise ValueError(
                f"field 'timestamp' is not a UTC time: {fields['timestamp']!r}"
            ) from None
        try:
            value_bytes = base64.b64decode(fields["value"], validate=True)
        except binascii.Error:
            raise ValueError("field 'value' is not base64") from None
        return cls(
            origin=fields["origin"],
            timestamp=timestamp.astimezone(UTC),
            namespace=fields["namespace"],
            topic=fields["topic"],
            type_url=fields["type_url"],
            value=value_bytes,
        )

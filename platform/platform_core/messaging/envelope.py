"""Integration messages: the envelope (CloudEvents 1.0, Kafka binary mode) and the ports.

An integration event is a context's public contract on the wire, versioned by its type
(`orders.order-placed.v1`) and separate from the domain events in the event store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

KafkaHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


def header_dict(headers: KafkaHeaders | None) -> dict[str, str]:
    """Kafka headers as text (undecodable bytes replaced)."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    return {
        name: value.decode(errors="replace") if isinstance(value, bytes) else value
        for name, value in items
        if value is not None
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class Envelope:
    """One integration message: CloudEvents attributes plus the JSON data."""

    id: str
    type: str
    source: str
    time: datetime
    subject: str = ""
    topic: str = ""
    key: str = ""
    data: bytes = b"{}"
    correlation_id: str | None = None
    causation_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def kafka_headers(self) -> list[tuple[str, str | bytes | None]]:
        """CloudEvents Kafka protocol binding, binary content mode."""
        headers = {
            "ce_specversion": SPEC_VERSION,
            "ce_id": self.id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_time": self.time.isoformat(),
            "content-type": CONTENT_TYPE,
        }
        if self.subject:
            headers["ce_subject"] = self.subject
        if self.correlation_id:
            headers["ce_correlationid"] = self.correlation_id
        if self.causation_id:
            headers["ce_causationid"] = self.causation_id
        headers.update({f"ce_{name}": value for name, value in self.extra.items()})
        return [(name, value.encode()) for name, value in headers.items()]

    @classmethod
    def from_kafka(
        cls,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: KafkaHeaders | None,
    ) -> Envelope:
        """The envelope of a received message; ValueError if it is not a CloudEvent."""
        attrs = header_dict(headers)
        missing = [a for a in ("ce_id", "ce_type", "ce_source", "ce_specversion") if a not in attrs]
        if missing:
            raise ValueError(f"not a CloudEvent: missing {', '.join(missing)}")
        known = {
            "ce_specversion",
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_time",
            "ce_subject",
            "ce_correlationid",
            "ce_causationid",
            "content-type",
        }
        return cls(
            id=attrs["ce_id"],
            type=attrs["ce_type"],
            source=attrs["ce_source"],
            time=datetime.fromisoformat(attrs["ce_time"]) if "ce_time" in attrs else datetime.min,
            subject=attrs.get("ce_subject", ""),
            topic=topic,
            key=key.decode() if key else "",
            data=value or b"{}",
            correlation_id=attrs.get("ce_correlationid"),
            causation_id=attrs.get("ce_causationid"),
            extra={k[3:]: v for k, v in attrs.items() if k.startswith("ce_") and k not in known},
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Outgoing:
    """An outbox row on its way out: the envelope and the row id that acknowledges it."""

    row_id: int
    envelope: Envelope


@dataclass(kw_only=True)
class PublishReport:
    """Which rows the broker acknowledged, and why the others failed."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class Publisher(Protocol):
    """Port: hands envelopes to a transport and reports the broker's acknowledgements."""

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport: ...

    def close(self) -> None: ...


# What a consumer group runs for a message of a type it handles.
MessageHandler = Callable[[Envelope], Any]

"""The envelope on Kafka: the CloudEvents binary binding there and back, and what is not
a CloudEvent refused with ValueError (the consumer dead-letters it)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from platform_core.messaging.envelope import Envelope

AT = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
ENVELOPE = Envelope(
    id="0b9c6a52-5c62-4d4c-9a52-0d2f3c1f6f10",
    type="orders.order-placed.v1",
    source="/orders",
    time=AT,
    subject="order-1",
    topic="orders.events.v1",
    key="order-1",
    data=b'{"order_id": "order-1", "total": "12.50"}',
    correlation_id="req-7",
    causation_id="cmd-1",
    extra={"tenant": "acme"},
)


def _received(headers: list[tuple[str, str | bytes | None]]) -> Envelope:
    return Envelope.from_kafka(ENVELOPE.topic, ENVELOPE.key.encode(), ENVELOPE.data, headers)


def test_an_envelope_comes_back_as_it_left():
    headers = ENVELOPE.kafka_headers()

    assert dict(headers)["ce_specversion"] == b"1.0"
    assert dict(headers)["content-type"] == b"application/json"
    assert _received(headers) == ENVELOPE


def test_a_message_without_a_time_gets_the_time_it_is_read():
    headers = [(k, v) for k, v in ENVELOPE.kafka_headers() if k != "ce_time"]
    before = datetime.now(UTC)

    received = _received(headers)

    assert received.time >= before
    assert received.time.tzinfo is not None


@pytest.mark.parametrize("dropped", ["ce_id", "ce_type", "ce_source", "ce_specversion"])
def test_a_message_without_a_required_attribute_is_not_a_cloudevent(dropped):
    headers = [(k, v) for k, v in ENVELOPE.kafka_headers() if k != dropped]

    with pytest.raises(ValueError, match=f"missing {dropped}"):
        _received(headers)


@pytest.mark.parametrize(
    "header",
    [("ce_time", b"yesterday"), ("ce_Bad-Name", b"x"), ("ce_id", b""), ("ce_type", b"\xff")],
)
def test_malformed_attributes_are_refused(header):
    name = header[0]
    headers = [(k, v) for k, v in ENVELOPE.kafka_headers() if k != name] + [header]

    with pytest.raises(ValueError, match="not a CloudEvent"):
        _received(headers)

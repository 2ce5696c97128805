"""What messaging.py's workloads are made of: integration events shaped like the inventory
context's, the outbox filled with them, and the bare confluent-kafka producer, with our
settings, that ours is measured beside."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

EVENT_TYPE = "inventory.stock-level-changed.v1"
KEYS = 1000  # distinct aggregates (message keys) the rows are spread over


def envelopes(count: int, topic: str, start: int = 0) -> list[Any]:
    """Integration events shaped like the inventory context's, over KEYS aggregates."""
    from platform_core.messaging.envelope import Envelope

    now = datetime.now(UTC)
    correlation = str(uuid.uuid4())
    result = []
    for n in range(start, start + count):
        sku = f"SKU-{n % KEYS:05d}"
        result.append(
            Envelope(
                id=str(uuid.uuid4()),
                type=EVENT_TYPE,
                source="/inventory",
                time=now,
                subject=sku,
                topic=topic,
                key=sku,
                data=json.dumps({"sku": sku, "on_hand": n, "reserved": 0}).encode(),
                correlation_id=correlation,
                causation_id=str(uuid.uuid4()),
            )
        )
    return result


def fill_outbox(url: str, batch: Sequence[Any]) -> None:
    """Empty the outbox, then COPY `batch` into it as unpublished rows, as Outbox.add would."""
    columns = (
        "topic, message_key, message_id, event_type, source, subject, occurred_at, "
        "data, headers, created_at, attempts, last_error"
    )
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox")
        with conn.cursor().copy(f"COPY outbox ({columns}) FROM STDIN") as copy:
            for e in batch:
                headers = {"correlationid": e.correlation_id, "causationid": e.causation_id}
                copy.write_row(
                    (
                        e.topic,
                        e.key,
                        e.id,
                        e.type,
                        e.source,
                        e.subject,
                        e.time,
                        e.data.decode(),
                        json.dumps(headers),
                        now,
                        0,
                        "",
                    )
                )
        conn.execute("VACUUM ANALYZE outbox")


def kafka_messages(batch: Sequence[Any]) -> list[tuple[str, bytes, bytes, list[Any]]]:
    return [(e.topic, e.key.encode(), e.data, e.kafka_headers()) for e in batch]


def bare_producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer

    from platform_core.messaging.kafka import PRODUCER_DEFAULTS

    return Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})


def produce_all(producer: Any, messages: Sequence[tuple[str, bytes, bytes, list[Any]]]) -> int:
    """The bare baseline: produce everything, then wait for every acknowledgement."""
    acked = 0

    def on_delivery(error: Any, _: Any) -> None:
        nonlocal acked
        if error is None:
            acked += 1

    for topic, key, value, headers in messages:
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)
    return acked

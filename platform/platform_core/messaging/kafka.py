"""Kafka adapters (confluent-kafka): the outbox publisher and the consumer-group runner."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer

from platform_core.messaging import dead_letters
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.envelope import Envelope, Outgoing, PublishReport, header_dict
from platform_core.storage.heartbeats import SILENT, Heartbeat

logger = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,  # implies acks=all and ordered, de-duplicated retries
    "acks": "all",
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 500_000,
    # A message the cluster does not acknowledge in time is reported failed; the relay
    # keeps its row unpublished and sends it again after a backoff.
    "message.timeout.ms": 15_000,
}

CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.commit": True,
    # Offsets are stored only after a message was processed, so auto-commit never
    # commits past unprocessed work.
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "allow.auto.create.topics": True,
    "topic.metadata.refresh.interval.ms": 5_000,
}


class KafkaPublisher:
    """Publishes outbox batches and reports which ones the brokers acknowledged."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        settings = {**PRODUCER_DEFAULTS, **config}
        self._producer = Producer(settings)
        self._flush_seconds = int(settings["message.timeout.ms"]) / 1000 + 5

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        report = PublishReport()

        def acknowledged(row_id: int, error: KafkaError | None, _: Message) -> None:
            if error is None:
                report.delivered.append(row_id)
            else:
                report.failed[row_id] = str(error)

        for item in batch:
            self._produce(item, partial(acknowledged, item.row_id))
        self._producer.flush(self._flush_seconds)
        answered = set(report.delivered) | set(report.failed)
        for item in batch:
            if item.row_id not in answered:
                report.failed[item.row_id] = "no acknowledgement before the timeout"
        return report

    def _produce(self, item: Outgoing, callback: Any) -> None:
        envelope = item.envelope
        while True:
            try:
                self._producer.produce(
                    envelope.topic,
                    key=envelope.key.encode(),
                    value=envelope.data,
                    headers=envelope.kafka_headers(),
                    on_delivery=callback,
                )
                return
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.05)

    def close(self) -> None:
        self._producer.flush(self._flush_seconds)


class KafkaConsumerRunner:
    """Runs one consumer group: poll a batch, process it, then store its offsets."""

    def __init__(
        self, group: ConsumerGroup, config: Mapping[str, Any], *, batch_size: int = 500
    ) -> None:
        self._group = group
        self._config = {**CONSUMER_DEFAULTS, **config, "group.id": group.name}
        self._batch_size = batch_size

    def run(
        self, stop: threading.Event, poll_seconds: float = 0.5, heartbeat: Heartbeat = SILENT
    ) -> None:
        """Consume until `stop` is set; then commit what was processed and leave. A poll
        that found nothing is a good round too: `heartbeat` hears of each."""
        consumer = Consumer(self._config)
        consumer.subscribe(self._group.topics, on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not stop.is_set():
                # consume() waits out its whole timeout unless the batch fills up, which
                # held a lone message for up to poll_seconds: wait for the first message
                # only, then take whatever else has been fetched already.
                first = consumer.poll(poll_seconds)
                if first is not None:
                    messages = [first]
                    if self._batch_size > 1:
                        messages += consumer.consume(self._batch_size - 1, 0)
                    self._process(consumer, messages)
                heartbeat.beat()
        finally:
            consumer.close()  # commits the stored offsets and leaves the group
            heartbeat.stop()

    def _assigned(self, consumer: Consumer, partitions: list[Any]) -> None:
        logger.info("consumer %s assigned %s", self._group.name, _named(partitions))

    def _revoked(self, consumer: Consumer, partitions: list[Any]) -> None:
        logger.info("consumer %s revoked %s", self._group.name, _named(partitions))

    def _process(self, consumer: Consumer, messages: list[Message]) -> None:
        envelopes = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"fatal Kafka error: {error}")
                logger.warning("consumer %s: %s", self._group.name, error)
                continue
            envelope = self._envelope(message)
            if envelope is not None:
                envelopes.append(envelope)
        self._group.handle_batch(envelopes)
        for message in messages:
            if message.error() is None:
                consumer.store_offsets(message=message)
        # Which member of the group handles which partitions, as a worker logs its tasks.
        partitions = sorted({f"{m.topic()}[{m.partition()}]" for m in messages if not m.error()})
        logger.info(
            "consumer %s handled %d from %s", self._group.name, len(messages), ", ".join(partitions)
        )

    def _envelope(self, message: Message) -> Envelope | None:
        try:
            return Envelope.from_kafka(
                message.topic() or "", message.key(), message.value(), message.headers() or []
            )
        except ValueError as error:
            where = f"{message.topic()}/{message.partition()}/{message.offset()}"
            payload, encoding = dead_letters.payload_of(message.value() or b"")
            self._group.dead_letter(
                dead_letters.Failure(
                    source=self._group.source,
                    destination=message.topic() or "",
                    message_id=where,
                    payload=payload,
                    headers={**header_dict(message.headers()), **encoding},
                    attempts=1,
                ),
                error,
            )
            return None


def _named(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"

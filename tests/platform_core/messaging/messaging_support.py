"""Shared pieces of the messaging tests: a countable side effect and waiting helpers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, connections

from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.envelope import Envelope
from platform_core.messaging.kafka import KafkaConsumerRunner

kafka_log = logging.getLogger("tests.kafka")


def quiet(config: dict[str, Any]) -> dict[str, Any]:
    """Route librdkafka's logs through Python logging (pytest captures them)."""
    return {**config, "logger": kafka_log}


@contextmanager
def effects_table() -> Iterator[None]:
    """A table where test handlers record each effect, so double effects are countable."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS test_effects (message_id text, body text)")
        cursor.execute("DELETE FROM test_effects")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS test_effects")


def record_effect(envelope: Envelope) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_effects (message_id, body) VALUES (%s, %s)",
            [envelope.id, envelope.data.decode()],
        )


def effects() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT message_id FROM test_effects")
        return [row[0] for row in cursor.fetchall()]


def wait_until(condition: Callable[[], bool], seconds: float = 30.0, what: str = "") -> None:
    """Poll an observable condition until it holds, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


@contextmanager
def running_consumer(group: ConsumerGroup, config: dict[str, Any]) -> Iterator[threading.Event]:
    """Run a Kafka consumer group in a thread; on exit stop it and let it commit."""
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            KafkaConsumerRunner(group, quiet(config), batch_size=200).run(stop, poll_seconds=0.2)
        except BaseException as error:  # surfaced to the test below
            failure.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=f"consumer-{group.name}")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "consumer did not stop"
        if failure:
            raise failure[0]


class Counted(threading.Event):
    """An event that also counts how many times it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.times = 0

    def set(self) -> None:
        self.times += 1
        super().set()

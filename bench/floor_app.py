"""The transport floor's Celery app (fulfillment.py, "floor" phase): one task with an empty
handler that answers on Kafka, on the same broker, vhost, queue settings and producer
settings as the product's commands and integration events.

    celery -A floor_app:app worker -Q floor -P threads -c 8 ...   (started by the bench)

An order of the floor is the saga's skeleton without its work: the bench produces a start
message, the floor consumer (`serve_floor_consumer`) sends `floor.step` for it, the task
produces its answer (and waits for Kafka's acknowledgement, as the relay does), the consumer
sends the next step, and after the last answer it tells the bench (`floor.done`).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import django

# The platform's Kafka and Celery defaults live in modules that need Django set up.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from celery import Celery  # type: ignore[import-untyped]  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

from platform_core.commands.celery_queues import celery_settings  # noqa: E402
from platform_core.commands.command_outbox import (  # noqa: E402
    COMMAND_TOPIC,
    CeleryCommandPublisher,
)
from platform_core.messaging.envelope import Envelope, Outgoing  # noqa: E402
from platform_core.messaging.kafka import CONSUMER_DEFAULTS, PRODUCER_DEFAULTS  # noqa: E402

STEPS = 4  # Celery tasks per order: reserve, pay, ship, confirm
EVENTS_TOPIC, DONE_TOPIC = "floor.events", "floor.done"
QUEUE = "floor"
TASK = "floor.step"

app = Celery("floor")
app.conf.update(
    celery_settings(queues=(QUEUE,), broker_url=os.environ.get("FLOOR_BROKER_URL", "memory://"))
)
app.conf.task_routes = {TASK: {"queue": QUEUE}}


class Answers:
    """A producer shared by the process's threads; `send` returns once Kafka acknowledged
    the message (a poller thread serves the delivery reports)."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})
        threading.Thread(target=self._poll, name="floor-producer", daemon=True).start()

    def _poll(self) -> None:
        while True:
            self._producer.poll(0.1)

    def send(self, topic: str, order: str, step: int) -> None:
        acked = threading.Event()
        failure: list[Any] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failure.append(error)
            acked.set()

        self._producer.produce(
            topic,
            key=order,
            value=json.dumps({"order": order, "step": step}),
            on_delivery=delivered,
        )
        if not acked.wait(30) or failure:
            raise RuntimeError(f"Kafka did not acknowledge {order} step {step}: {failure}")


_answers: Answers | None = None
_answers_lock = threading.Lock()


def answers() -> Answers:
    global _answers
    with _answers_lock:
        if _answers is None:
            _answers = Answers(os.environ["KAFKA_BOOTSTRAP_SERVERS"])
        return _answers


@app.task(name=TASK, ignore_result=True)  # type: ignore[misc]
def step(order: str, step: int) -> None:
    """The empty handler: answer that the step happened."""
    answers().send(EVENTS_TOPIC, order, step)


def next_batch(consumer: Consumer, size: int = 500) -> list[Any]:
    """As the product's consumers take a batch: wait for the first message only, then
    whatever else has been fetched already."""
    first = consumer.poll(0.5)
    return [] if first is None else [first, *consumer.consume(size - 1, 0)]


def serve_floor_consumer(bootstrap: str, fetch_wait_ms: int) -> None:
    """The floor's saga stand-in: for each answer, the next step's task, or `floor.done`.
    Offsets are stored after a batch is handled, as the product's consumers do."""
    consumer = Consumer(
        {
            **CONSUMER_DEFAULTS,
            "bootstrap.servers": bootstrap,
            "group.id": "floor-saga",
            "fetch.wait.max.ms": fetch_wait_ms,
        }
    )
    consumer.subscribe([EVENTS_TOPIC])
    done = Producer({**PRODUCER_DEFAULTS, "bootstrap.servers": bootstrap})
    # The relay's own publisher: a batch of tasks in one AMQP transaction.
    tasks = CeleryCommandPublisher(app)
    try:
        while True:
            batch = next_batch(consumer)
            steps: list[Outgoing] = []
            for message in batch:
                if message.error():
                    continue
                answer = json.loads(message.value())
                if answer["step"] < STEPS:
                    steps.append(
                        Outgoing(
                            row_id=len(steps), envelope=_step(answer["order"], answer["step"] + 1)
                        )
                    )
                else:
                    done.produce(DONE_TOPIC, key=answer["order"], value=message.value())
            if steps and tasks.publish(steps).failed:
                raise RuntimeError("RabbitMQ did not take the floor's tasks")
            if done.flush(30):
                raise RuntimeError("Kafka did not acknowledge the floor's done messages")
            for message in batch:
                if not message.error():
                    consumer.store_offsets(message)
    finally:
        tasks.close()
        consumer.close()


def _step(order: str, step: int) -> Envelope:
    command_id = str(uuid.uuid4())
    return Envelope(
        id=command_id,
        type=TASK,
        source=f"/commands/{QUEUE}",
        time=datetime.now(UTC),
        topic=f"{COMMAND_TOPIC}{QUEUE}",
        key=command_id,
        data=json.dumps({"order": order, "step": step}).encode(),
    )

"""One malformed message on a command queue (a known task's name over a body that is not
Celery's `[args, kwargs, embed]`) used to stop the Celery worker while it took the
message; RabbitMQ handed it to the restarted worker, which stopped again, and every
context's commands waited. It is rejected to the queue's dead-letter queue instead, and
the worker goes on (found by breaking the deployment from outside)."""

from __future__ import annotations

import uuid

import kombu
import pytest

from tests.e2e.chaos_support import confirm_one
from tests.e2e.deployment import deployment

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def dead_queue_depth(url: str, queue: str) -> int:
    with kombu.Connection(url) as broker:
        _, count, _ = broker.default_channel.queue_declare(queue, passive=True)
        return int(count)


def test_a_malformed_command_message_is_dead_lettered_and_the_worker_goes_on(tmp_path):
    with deployment(tmp_path) as running:
        confirm_one(running)  # the worker runs commands, its queues are declared
        worker = running.procs["worker"]
        url = running.fleet.env["CELERY_BROKER_URL"]
        with kombu.Connection(url) as broker:
            broker.Producer().publish(
                {"x": 1},  # not [args, kwargs, embed]
                routing_key="payments",
                exchange="",
                serializer="json",
                headers={"task": "payments.tasks.process_payment", "id": str(uuid.uuid4())},
            )

        running.wait_until(
            lambda: dead_queue_depth(url, "payments.dead") == 1 or not worker.alive,
            "the malformed message rejected to payments.dead",
        )
        confirm_one(running)  # its charge goes through the payments queue after it

        assert worker.alive, f"the worker stopped:\n{worker.tail(30)}"
        assert running.procs["worker"] is worker, "the same worker process, not a restart"

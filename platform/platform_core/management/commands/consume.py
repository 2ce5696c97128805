"""Run one Kafka consumer group until SIGTERM, then commit and leave cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from platform_core.messaging.kafka import KafkaConsumerRunner
from platform_core.runtime import runtime
from platform_core.storage.heartbeats import Heartbeat


def consumer_membership(instance_id: str) -> dict[str, Any]:
    """How long the group waits for a silent member, and its static id if it has one."""
    membership: dict[str, Any] = {
        "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(500, settings.KAFKA_SESSION_TIMEOUT_MS // 4),
    }
    if instance_id:
        membership["group.instance.id"] = instance_id
    return membership


class Command(BaseCommand):
    help = "Consume Kafka topics with a registered consumer group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group", help="the consumer group's name")
        parser.add_argument(
            "--instance-id",
            default=settings.KAFKA_GROUP_INSTANCE_ID,
            help="a static member id, the same across restarts of this process "
            "(default: KAFKA_GROUP_INSTANCE_ID; none: a dynamic member)",
        )

    def handle(self, *args: Any, group: str, instance_id: str, **options: Any) -> None:
        rt = runtime()
        if group not in rt.consumer_groups:
            known = ", ".join(sorted(rt.consumer_groups)) or "none"
            raise CommandError(f"unknown consumer group {group!r} (registered: {known})")
        if not rt.kafka_config.get("bootstrap.servers"):
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(
            f"consumer group {group} on {', '.join(rt.consumer_groups[group].topics)}"
        )
        config = {**rt.kafka_config, **consumer_membership(instance_id)}
        KafkaConsumerRunner(rt.consumer_groups[group], config).run(
            stop, heartbeat=Heartbeat(f"consumer:{group}")
        )
        self.stdout.write("stopped; offsets committed")

"""Run one Kafka consumer group until SIGTERM, then commit and leave cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from platform_core.kafka import KafkaConsumerRunner
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = "Consume Kafka topics with a registered consumer group."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("group", help="the consumer group's name")

    def handle(self, *args: Any, group: str, **options: Any) -> None:
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
        KafkaConsumerRunner(rt.consumer_groups[group], rt.kafka_config).run(stop)
        self.stdout.write("stopped; offsets committed")

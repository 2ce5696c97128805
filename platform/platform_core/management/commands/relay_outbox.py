"""Publish the outbox to the broker until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from platform_core.messaging.wakeups import OUTBOX_CHANNEL, CommitListener
from platform_core.runtime import runtime
from platform_core.storage.heartbeats import Heartbeat


class Command(BaseCommand):
    help = (
        "Relay outbox rows to Kafka (or the in-process transport), woken by each commit "
        "that adds rows (PostgreSQL NOTIFY); --once drains and exits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain the outbox, then exit")
        parser.add_argument(
            "--poll",
            type=float,
            default=5.0,
            help="seconds between polls when no commit wakes the relay (a safety net)",
        )

    def handle(self, *args: Any, once: bool, poll: float, **options: Any) -> None:
        relay = runtime().relay
        if once:
            self.stdout.write(f"published {relay.drain()}; {relay.backlog()} left")
            return
        stop, wake = threading.Event(), threading.Event()

        def stop_now(*_: object) -> None:
            stop.set()
            wake.set()  # rather than finish waiting out --poll

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop_now)
        self.stdout.write(f"relaying the outbox ({relay.backlog()} waiting); Ctrl-C stops")
        # Other processes' commits wake this one through PostgreSQL notifications.
        with CommitListener({OUTBOX_CHANNEL: wake}):
            relay.run_forever(
                stop,
                wake,
                idle_seconds=poll,
                heartbeat=Heartbeat("relay"),
                linger=settings.RELAY_LINGER_SECONDS,
            )

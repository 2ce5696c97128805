"""Publish the outbox to the broker until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from platform_core.runtime import runtime


class Command(BaseCommand):
    help = "Relay outbox rows to Kafka (or the in-process transport); --once drains and exits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="drain the outbox, then exit")
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between polls")

    def handle(self, *args: Any, once: bool, poll: float, **options: Any) -> None:
        relay = runtime().relay
        if once:
            self.stdout.write(f"published {relay.drain()}; {relay.backlog()} left")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"relaying the outbox ({relay.backlog()} waiting); Ctrl-C stops")
        # Another process's commits cannot wake this one, so it polls.
        relay.run_forever(stop, threading.Event(), idle_seconds=poll)

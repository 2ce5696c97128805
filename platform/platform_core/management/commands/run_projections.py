"""Run every projection: catch up once, or keep following the log."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from platform_core.rebuild_requests import RebuildRequests
from platform_core.runtime import runtime


class Command(BaseCommand):
    help = "Project the event log into the read models (--once: catch up and exit)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="catch up, then exit")
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")

    def handle(self, *args: Any, once: bool, poll: float, **options: Any) -> None:
        runner = runtime().projections
        if once:
            read = runner.catch_up()
            self.stdout.write(f"caught up: {read} events read")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"projecting {', '.join(runner.names)}; Ctrl-C stops")
        # Another process's commits cannot wake this one, so it polls.
        requests = RebuildRequests(runner)
        runner.run_forever(
            stop, threading.Event(), idle_seconds=poll, on_idle=requests.start_requested
        )

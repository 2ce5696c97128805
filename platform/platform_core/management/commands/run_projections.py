"""Run every projection: catch up once, or keep following the log."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from platform_core.messaging.wakeups import OUTBOX_CHANNEL, CatchUpWatch, CommitListener
from platform_core.projections.rebuild_requests import CHECK_EVERY_SECONDS, RebuildRequests
from platform_core.runtime import runtime
from platform_core.storage.heartbeats import Heartbeat


class Command(BaseCommand):
    help = (
        "Project the event log into the read models, woken by each commit that appends "
        "events (PostgreSQL NOTIFY); --once: catch up and exit."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="catch up, then exit")
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="seconds between polls: what wakes the projector for appends that publish "
            "no integration event (others wake it at commit)",
        )

    def handle(self, *args: Any, once: bool, poll: float, **options: Any) -> None:
        runner = runtime().projections
        if once:
            read = runner.catch_up()
            self.stdout.write(f"caught up: {read} events read")
            return
        stop, wake = threading.Event(), threading.Event()

        def stop_now(*_: object) -> None:
            stop.set()
            wake.set()  # rather than finish waiting out --poll

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop_now)
        self.stdout.write(f"projecting {', '.join(runner.names)}; Ctrl-C stops")
        requests = RebuildRequests(runner, check_every=CHECK_EVERY_SECONDS)
        watch = CatchUpWatch(runner.names, wake)

        def on_idle() -> None:
            requests.start_requested()
            watch()

        # Other processes' commits that publish integration events (nearly all of them)
        # wake this one through PostgreSQL notifications; the rest are seen on the poll.
        with CommitListener({OUTBOX_CHANNEL: wake}):
            runner.run_forever(
                stop,
                wake,
                idle_seconds=poll,
                on_idle=on_idle,
                heartbeat=Heartbeat("projector"),
                linger=settings.PROJECTOR_LINGER_SECONDS,
            )

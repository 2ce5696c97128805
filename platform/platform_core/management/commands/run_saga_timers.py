"""Fire saga step deadlines: re-send silent steps, then compensate them."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from platform_core.runtime import runtime
from platform_core.sagas.manager import run_timers
from platform_core.storage.heartbeats import Heartbeat


class Command(BaseCommand):
    help = "Watch saga step deadlines until stopped (--once: fire what is due and exit)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true")
        parser.add_argument("--every", type=float, default=1.0, help="seconds between checks")

    def handle(self, *args: Any, once: bool, every: float, **options: Any) -> None:
        sagas = list(runtime().sagas.values())
        if once:
            fired = sum(saga.fire_deadlines() for saga in sagas)
            self.stdout.write(f"{fired} saga step(s) past their deadline handled")
            return
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        self.stdout.write(f"watching deadlines of {', '.join(s.definition.name for s in sagas)}")
        run_timers(sagas, stop, threading.Event(), every, heartbeat=Heartbeat("saga-timers"))

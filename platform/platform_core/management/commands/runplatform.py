"""Serve the whole platform from one process: HTTP and websockets (Daphne) plus the
in-process workers (projector, outbox relay with the consumer groups, saga timers).
This is what `make run` starts on the embedded defaults."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils.module_loading import import_string
from twisted.internet import reactor  # Daphne's asyncio reactor, installed by daphne.server

from platform_core.messaging.wakeups import OUTBOX_CHANNEL, CatchUpWatch, CommitListener
from platform_core.projections.rebuild_requests import CHECK_EVERY_SECONDS, RebuildRequests
from platform_core.runtime import Runtime, runtime
from platform_core.sagas.manager import run_timers
from platform_core.storage.heartbeats import Heartbeat
from platform_core.web.server import Server

logger = logging.getLogger(__name__)

# How long Daphne may take to end its connections' applications once asked to stop. Past
# it the process stops its workers and exits anyway: one application that ignores its
# cancellation would otherwise keep the process (and `make run`) up for ever.
SHUTDOWN_GRACE_SECONDS = 10.0


class Command(BaseCommand):
    help = "Serve HTTP/websockets and run the projector and relay in this process (Ctrl-C stops)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        # `kill -USR1 <pid>` prints every thread's stack: what a process that will not stop
        # is waiting for.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        rt = runtime()
        stop = threading.Event()
        workers = [
            threading.Thread(
                target=_work,
                args=(
                    partial(
                        rt.projections.run_forever,
                        on_idle=_projector_idle(rt),
                        heartbeat=Heartbeat("projector"),
                        linger=settings.PROJECTOR_LINGER_SECONDS,
                    ),
                    stop,
                    rt.log_changed,
                ),
                name="projector",
                daemon=True,
            ),
            threading.Thread(
                target=_work,
                args=(
                    partial(
                        rt.relay.run_forever,
                        heartbeat=Heartbeat("relay"),
                        linger=settings.RELAY_LINGER_SECONDS,
                    ),
                    stop,
                    rt.outbox_changed,
                ),
                name="outbox-relay",
                daemon=True,
            ),
            threading.Thread(
                target=_work,
                args=(
                    partial(
                        run_timers, list(rt.sagas.values()), heartbeat=Heartbeat("saga-timers")
                    ),
                    stop,
                    threading.Event(),
                ),
                name="saga-timers",
                daemon=True,
            ),
        ]
        # This process's own commits set the events directly; on PostgreSQL, commits of
        # other writers (a Celery worker, Kafka consumers) arrive as notifications.
        listener = CommitListener({OUTBOX_CHANNEL: (rt.log_changed, rt.outbox_changed)}).start()
        for worker in workers:
            worker.start()
        served = threading.Event()  # Daphne's run() has returned
        finishing = threading.Lock()

        def finish(how: str) -> None:
            with finishing:  # the main thread or the watchdog, whichever comes first
                stop.set()
                rt.log_changed.set()
                rt.outbox_changed.set()
                listener.close()
                for worker in workers:
                    worker.join(timeout=10)
                self.stdout.write(f"Stopped{how}.")
                _exit_at_once()

        def watchdog() -> None:
            if not served.wait(SHUTDOWN_GRACE_SECONDS):
                logger.warning(
                    "open connections did not close within %.0f s of the stop; stopping anyway",
                    SHUTDOWN_GRACE_SECONDS,
                )
                faulthandler.dump_traceback(all_threads=True)  # what they were waiting for
                finish(" (connections still open)")

        def on_signal(signum: int, frame: Any) -> None:
            if stop.is_set():
                return
            stop.set()
            reactor.callFromThread(reactor.stop)  # type: ignore[misc]
            threading.Thread(target=watchdog, name="shutdown-watchdog", daemon=True).start()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        self.stdout.write(f"Serving on http://{host}:{port}/  (Ctrl-C to stop)")
        try:
            Server(
                application=import_string(settings.ASGI_APPLICATION),
                endpoints=build_endpoint_description_strings(host=host, port=port),
                signal_handlers=False,  # on_signal above: a stop with a deadline
                # Daphne's send never waits for the client, so pings are what find a client
                # that stopped reading (docs/live-updates.md).
                ping_interval=getattr(settings, "WEBSOCKET_PING_INTERVAL", 20),
                ping_timeout=getattr(settings, "WEBSOCKET_PING_TIMEOUT", 30),
            ).run()
        finally:
            served.set()
            finish("")


def _exit_at_once() -> None:
    """End the process now that the workers have stopped and committed what they did.

    Daphne has stopped its event loop by now, yet a request thread can still wait in
    asgiref for that loop (interpreter exit would then join it forever), and collecting
    the in-memory channel layer's pending receives at interpreter exit can crash CPython.
    Nothing is left to finish: every transaction has ended and the workers have joined.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _projector_idle(rt: Runtime) -> Callable[[], None]:
    """What the projector does after each catch-up: start requested rebuilds, and come
    back soon while committed events were hidden from it (platform_core.messaging.wakeups)."""
    requests = RebuildRequests(rt.projections, check_every=CHECK_EVERY_SECONDS)
    watch = CatchUpWatch(rt.projections.names, rt.log_changed)

    def on_idle() -> None:
        requests.start_requested()
        watch()

    return on_idle


def _work(
    loop: Callable[[threading.Event, threading.Event], None],
    stop: threading.Event,
    wake: threading.Event,
) -> None:
    try:
        loop(stop, wake)
    finally:
        connections.close_all()

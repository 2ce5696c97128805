"""The live projector catching up from checkpoint 0, a contender of projections.py's rebuild
rounds: a fresh ProjectionRunner built as config/bootstrap.py builds it, its live updates
going through the deployment's channel layer (Redis pub/sub, under a prefix of this run's
own), first with nobody listening, then with a staff board listening to every order (a
subscriber process on the `orders.all` group, which counts what it receives)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import redis
from _common import REDIS

PREFIX = f"bench-projections-{os.getpid()}"
# What config/settings.py deploys when REDIS_URL is set.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "platform_core.live.pubsub.PubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS], "prefix": PREFIX},
    }
}
# The staff board: subscribes, says so, counts messages until SIGTERM, prints the count.
SUBSCRIBER = """
import signal, sys, redis
def stop(*_): raise SystemExit
signal.signal(signal.SIGTERM, stop)
pubsub = redis.Redis.from_url(sys.argv[1]).pubsub()
pubsub.subscribe(sys.argv[2])
received = 0
try:
    for message in pubsub.listen():
        received += message["type"] == "message"
finally:
    print(received, flush=True)
"""


def reset_projections() -> None:
    """Empty the read models and forget the checkpoints: the projector starts from 0."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE read_order_summary, read_product_stock")
        cursor.execute("DELETE FROM projection_checkpoints")


def catch_up_from_zero() -> tuple[int, float]:
    """The live projector from checkpoint 0 over emptied read models: (events read,
    seconds). A fresh runner each time: a runner skips projections it left at the head."""
    from platform_core.projections.projector import ProjectionRunner
    from platform_core.runtime import runtime
    from projections.live import announce_orders
    from projections.order_summary import OrderSummaryProjection
    from projections.product_stock import ProductStockProjection

    rt = runtime()
    runner = ProjectionRunner(
        [OrderSummaryProjection(announce=announce_orders), ProductStockProjection()],
        store=rt.store,
        codec=rt.codec,
    )
    reset_projections()
    start = time.perf_counter()
    read = runner.catch_up()
    return read, time.perf_counter() - start


@contextlib.contextmanager
def deployed_channel_layer() -> Iterator[None]:
    """The Redis pub/sub layer of a deployment for the block (the bench runs without one)."""
    from django.test import override_settings

    with override_settings(CHANNEL_LAYERS=CHANNEL_LAYERS):
        yield


class StaffBoard:
    """A subscriber process on the group every changed order goes to."""

    def __init__(self) -> None:
        self.received = 0
        self._channel = f"{PREFIX}__group__orders.all"  # channels_redis's group channel

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        command = [sys.executable, "-c", SUBSCRIBER, REDIS, self._channel]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            self._wait_subscribed()
            yield
        finally:
            time.sleep(0.2)  # the last messages in flight
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
            self.received = int(out.strip() or 0)

    def _wait_subscribed(self, timeout: float = 30) -> None:
        client: Any = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + timeout
        try:
            while not client.pubsub_numsub(self._channel)[0][1]:
                if time.monotonic() > deadline:
                    raise RuntimeError("the staff board never subscribed")
                time.sleep(0.05)
        finally:
            client.close()

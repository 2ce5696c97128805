"""The push part of projections.py: manage.py runplatform on the Redis channel layer, its
users and products; then, while websocket clients listen and a customer places orders, the
latency from each event's commit to every client, split at the log's visibility horizon
and the read model's checkpoint."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import re
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _common import (
    APP_PREFIX,
    REDIS,
    ROOT,
    Fleet,
    Http,
    free_port,
    log,
    machine_cpu_seconds,
    percentile,
    proc_stat,
    wait_http,
)
from projections_clients import Client, Placer, close_clients, connect_clients, place_and_listen
from projections_sizes import Sizes


def server_env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CELERY_", "KAFKA_"))
        and k not in {"REDIS_URL", "DATABASE_URL"}
    }
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")]),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": url,
            # The Redis channel layer, as in production; a prefix of our own so that
            # nobody else's groups on this Redis see our messages (nor we theirs).
            "REDIS_URL": REDIS,
            "CHANNEL_LAYER_PREFIX": f"bench-projections-{os.getpid()}",
            "CACHE_KEY_PREFIX": f"bench-projections-{os.getpid()}",
            "SECRET_KEY": f"bench-{uuid.uuid4().hex}{uuid.uuid4().hex}",
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "ORDER_RATE_LIMIT": "off",  # one customer places every order of the load
            # Django under ASGI: no persistent connections (see bench/fulfillment.py).
            "CONN_MAX_AGE": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def create_tokens() -> tuple[str, str]:
    """A staff user and a customer, each with a DRF token (made in the bench's process)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    users = get_user_model()
    staff = users.objects.create_user("bench-staff", password=uuid.uuid4().hex, is_staff=True)
    customer = users.objects.create_user("bench-customer", password=uuid.uuid4().hex)
    return Token.objects.create(user=staff).key, Token.objects.create(user=customer).key


def register_products(url: str, port: int, staff: str, count: int) -> list[str]:
    http = Http(port, staff)
    skus = [f"LIVE-{n:03d}" for n in range(count)]
    try:
        for n, sku in enumerate(skus):
            body = {"sku": sku, "name": f"Live {n}", "price": "9.50", "initial_stock": 1_000_000}
            status, answer = http.request("POST", "/api/products/", body)
            if status != 202:
                raise RuntimeError(f"registering {sku}: {status} {answer[:200]!r}")
    finally:
        http.close()
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM read_product_stock WHERE sku LIKE 'LIVE-%%'"
            ).fetchone()
            if row and row[0] == len(skus):
                return skus
            if time.monotonic() > deadline:
                raise RuntimeError("the projector did not project the bench's products")
            time.sleep(0.1)


class CheckpointWatcher(threading.Thread):
    """Polls every 5 ms, noting when each value was first seen: order_summary's checkpoint
    (the projector's batch had committed by then) and the cluster's oldest running
    transaction id (xmin: an event becomes visible to the projector once xmin passes the
    id of the transaction that wrote it, see sql_store). Each at most 5 ms late."""

    QUERY = (
        "SELECT transaction_id, position,"
        " pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        " FROM projection_checkpoints WHERE name = 'order_summary'"
    )

    def __init__(self, url: str) -> None:
        super().__init__(name="checkpoint-watcher", daemon=True)
        self._conn = psycopg.connect(url, autocommit=True)
        self._stop_event = threading.Event()
        self.checkpoints: list[tuple[float, tuple[int, int]]] = []  # (time, (tx, pos))
        self.horizons: list[tuple[float, int]] = []  # (time, xmin)

    def run(self) -> None:
        while not self._stop_event.is_set():
            row = self._conn.execute(self.QUERY, prepare=True).fetchone()
            at = time.time()
            if row and (not self.checkpoints or (row[0], row[1]) > self.checkpoints[-1][1]):
                self.checkpoints.append((at, (row[0], row[1])))
            if row and (not self.horizons or row[2] > self.horizons[-1][1]):
                self.horizons.append((at, row[2]))
            self._stop_event.wait(0.005)

    def projected_at(self, position: str) -> float | None:
        """When a checkpoint at or past `position` ("<tx>.<pos>") was first seen."""
        tx, _, pos = position.partition(".")
        seen = [p for _, p in self.checkpoints]
        index = bisect.bisect_left(seen, (int(tx), int(pos)))
        return self.checkpoints[index][0] if index < len(seen) else None

    def visible_at(self, position: str) -> float | None:
        """When xmin was first seen past the transaction that wrote `position`."""
        tx = int(position.partition(".")[0])
        index = bisect.bisect_right([x for _, x in self.horizons], tx)
        return self.horizons[index][0] if index < len(self.horizons) else None

    def close(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        self._conn.close()


def recorded(
    url: str, positions: set[str], orders: set[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """(recorded_at in epoch seconds and event type by "<tx>.<pos>", recorded_at of each
    order's OrderPlaced by order id)."""
    wanted = [int(p.partition(".")[2]) for p in positions]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT transaction_id::text || '.' || position,"
            " extract(epoch FROM recorded_at)::float8, event_type"
            " FROM event_store WHERE position = ANY(%s)",
            [wanted],
        ).fetchall()
        placed = conn.execute(
            "SELECT substr(stream_id, 7), extract(epoch FROM recorded_at)::float8"
            " FROM event_store WHERE stream_id = ANY(%s) AND version = 1",
            [[f"order-{order_id}" for order_id in orders]],
        ).fetchall()
    events = {position: (at, kind.rpartition(".")[2]) for position, at, kind in rows}
    return {p: v for p, v in events.items() if p in positions}, dict(placed)


def push_metrics(
    url: str,
    clients: list[Client],
    placer: Placer,
    watcher: CheckpointWatcher,
    flat: dict[str, Any],
) -> None:
    ids = {order_id for order_id, _, _ in placer.placed}
    frames = [f for c in clients for f in c.frames if f[2] in ids]
    events, placed_at = recorded(url, {f[1] for f in frames}, ids)
    latency = [(received - events[p][0]) * 1000 for received, p, _ in frames if p in events]
    if not latency:
        raise RuntimeError(f"no frames for the orders placed; POST errors: {placer.errors[:3]}")
    received_at: dict[str, list[float]] = {}
    for received, position, _ in frames:
        if position in events:
            received_at.setdefault(position, []).append(received)
    first = {p: (min(t) - events[p][0]) * 1000 for p, t in received_at.items()}
    spread = [(max(t) - min(t)) * 1000 for t in received_at.values()]
    projected = {p: at for p in received_at if (at := watcher.projected_at(p)) is not None}
    to_model = [(at - events[p][0]) * 1000 for p, at in projected.items()]
    visible = {p: at for p in projected if (at := watcher.visible_at(p)) is not None}
    to_visible = [(at - events[p][0]) * 1000 for p, at in visible.items()]
    visible_to_model = [(projected[p] - at) * 1000 for p, at in visible.items()]
    to_client = [(min(received_at[p]) - at) * 1000 for p, at in projected.items()]
    per_client = [sum(1 for f in c.frames if f[2] in ids) for c in clients]
    flat.update(
        {
            "push_orders": len(ids),
            "push_post_errors": len(placer.errors),
            "push_frames": len(latency),
            "push_positions": len(received_at),
            "push_latency_p50_ms": percentile(latency, 50),
            "push_latency_p90_ms": percentile(latency, 90),
            "push_latency_p99_ms": percentile(latency, 99),
            "push_latency_max_ms": max(latency),
            "push_first_client_p50_ms": percentile(list(first.values()), 50),
            "push_first_client_p99_ms": percentile(list(first.values()), 99),
            "push_read_model_p50_ms": percentile(to_model, 50),
            "push_read_model_p99_ms": percentile(to_model, 99),
            "push_read_model_over_500ms": sum(ms > 500 for ms in to_model),
            "push_visible_p50_ms": percentile(to_visible, 50),
            "push_visible_p99_ms": percentile(to_visible, 99),
            "push_visible_to_read_model_p50_ms": percentile(visible_to_model, 50),
            "push_visible_to_read_model_p99_ms": percentile(visible_to_model, 99),
            "push_read_model_to_first_client_p50_ms": percentile(to_client, 50),
            "push_read_model_to_first_client_p99_ms": percentile(to_client, 99),
            "push_fanout_spread_p50_ms": percentile(spread, 50),
            "push_fanout_spread_p99_ms": percentile(spread, 99),
            "push_frames_per_client_mean": statistics.fmean(per_client),
            "push_frames_per_client_min": min(per_client),
            "push_frames_per_client_max": max(per_client),
            "push_frames_per_order": statistics.fmean(per_client) / max(len(ids), 1),
            "push_missing_final": sum(len(ids - c.final) for c in clients),
            "post_p50_ms": percentile([(a - s) * 1000 for _, s, a in placer.placed], 50),
            # recorded_at is when the writing transaction began, not when it committed: the
            # POST's answer comes after its commit, so this bounds the gap for OrderPlaced.
            "post_answered_after_recorded_p50_ms": percentile(
                [(a - placed_at[o]) * 1000 for o, _, a in placer.placed if o in placed_at], 50
            ),
        }
    )
    for kind in sorted({kind for _, kind in events.values()}):
        mine = [ms for p, ms in first.items() if events[p][1] == kind]
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()
        flat[f"push_first_client_p50_ms_{snake}"] = percentile(mine, 50)


def run_push(url: str, sizes: Sizes, logdir: Path, flat: dict[str, Any]) -> None:
    from django.db import connections

    staff, customer = create_tokens()
    connections.close_all()
    fleet = Fleet(server_env(url), logdir, root=ROOT, app_prefix=APP_PREFIX)
    clients: list[Client] = []
    loop = asyncio.new_event_loop()
    try:
        port = free_port()
        server = fleet.manage("server", "runplatform", "--port", str(port))
        wait_http(port, fleet, "runplatform")
        skus = register_products(url, port, staff, 20)
        log(f"connecting {sizes.clients} websocket clients ...")
        loop.run_until_complete(connect_clients(port, staff, sizes.clients, clients))
        # Warm-up: the whole path (saga, projector, channel layer, consumers) has run once.
        loop.run_until_complete(place_and_listen(port, customer, skus, clients, 2, 4))
        for client in clients:
            client.frames.clear()
        count = max(1, int(sizes.order_rate * sizes.push_seconds))
        log(f"placing {count} orders at {sizes.order_rate}/s ...")
        watcher = CheckpointWatcher(url)
        watcher.start()
        busy0, cpu0, own0 = machine_cpu_seconds(), proc_stat(server.pid), os.times()
        wall0 = time.monotonic()
        try:
            placer = loop.run_until_complete(
                place_and_listen(port, customer, skus, clients, sizes.order_rate, count)
            )
        finally:
            watcher.close()
        wall = time.monotonic() - wall0
        busy1, cpu1, own1 = machine_cpu_seconds(), proc_stat(server.pid), os.times()
        fleet.check_alive()
        push_metrics(url, clients, placer, watcher, flat)
        if cpu0 and cpu1:
            flat["push_server_cpu_pct"] = 100 * (cpu1[2] - cpu0[2]) / wall
        own = (own1.user + own1.system) - (own0.user + own0.system)
        flat["push_bench_cpu_pct"] = 100 * own / wall
        flat["push_machine_busy_pct"] = 100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
        flat["push_clients"] = len(clients)
    except BaseException:
        for proc in fleet.procs:
            log(f"--- {proc.role} (exit {proc.popen.poll()}):\n{proc.tail(30)}")
        raise
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(close_clients(clients))
        loop.close()
        fleet.stop()

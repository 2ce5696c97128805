"""Projection benchmark on PostgreSQL: rebuild and catch-up rates over a realistic log beside
a raw psycopg read of the same log, then the push latency from commit to websocket clients.

    .venv/bin/python bench/projections.py             # 100k events, 100 clients: ~2.5 minutes
    .venv/bin/python bench/projections.py --quick     # CI smoke: 10k events, 20 clients
    .venv/bin/python bench/projections.py --profile   # plus where a rebuild's time goes

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_projections; the name must start with "bench_"),
migrates it, and runs two parts (--only rebuild,push):

  rebuild  bench/order_log.py appends order lifecycles through the real event store (events
           of the four contexts, encoded by the project's codec, a hundred orders a
           transaction). Then, in interleaved rounds that rotate who goes first:
             raw read   plain psycopg, autocommit: the log start to end in batches of 5,000
                        with the query of PostgresEventStore.read_all (keyset over
                        (transaction_id, position), every column, binary results);
             rebuild    ProjectionRebuild(runtime().projections, name).run() for
                        order_summary and product_stock (events and seconds from its
                        RebuildReport).
           Then once, right after one more raw read: the live projector from checkpoint 0
           (read models emptied, checkpoints deleted), ProjectionRunner.catch_up() for both
           projections in its batches of 500. Rates are log events per second; a ratio is
           the median of the per-round ratios. --profile runs one order_summary rebuild and
           the projector's first batches under py-spy and prints where the time goes.
  push     manage.py runplatform (HTTP, websockets, projector, relay and saga in one process)
           on a free port with the Redis channel layer; N websocket clients on ws/orders/ as
           staff (token auth) in this process; a customer places orders over REST at a
           fixed rate. For every (client, order.updated frame): latency = when the client
           got it - recorded_at of the event at the frame's position.

Prints a table and writes bench/results/projections.json. docs/benchmarks.md explains
what bounds the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _path in (str(BENCH), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
from _common import (  # noqa: E402
    APP_PREFIX,
    Fleet,
    Http,
    format_number,
    free_port,
    interleaved,
    machine,
    machine_cpu_seconds,
    median,
    now_iso,
    paired_ratio,
    percentile,
    proc_stat,
    recreate_database,
    render_table,
    setup_django,
    wait_for_log,
    wait_http,
    write_results,
)
from order_log import ADDRESS, PRODUCTS, LogWriter  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_projections"
REDIS = "redis://127.0.0.1:6379/0"
PROJECTIONS = ("order_summary", "product_stock")
READ_BATCH = 5000  # ProjectionRebuild's default batch_size
FINAL = {"confirmed", "cancelled"}  # what an order placed in the push phase ends as


@dataclass(frozen=True)
class Sizes:
    events: int  # log size (whole transactions of 100 orders, so about this)
    rounds: int
    clients: int  # websocket clients
    order_rate: float  # orders/s placed in the push phase
    push_seconds: float
    timeout: float  # the whole run


QUICK = Sizes(events=10_000, rounds=3, clients=20, order_rate=2, push_seconds=10, timeout=240)
DEFAULT = Sizes(events=100_000, rounds=5, clients=100, order_rate=2, push_seconds=45, timeout=900)

TARGETS = {  # metric: (comparison, value, label)
    "rebuild_order_summary_raw_ratio": (">=", 0.3, ">= 0.3x"),
    "rebuild_product_stock_raw_ratio": (">=", 0.3, ">= 0.3x"),
    "push_latency_p99_ms": ("<=", 250, "<= 250 ms"),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- rebuild part

# The shape of PostgresEventStore.read_all: every column, JSON as text, visible rows only.
RAW_READ = """
SELECT position, transaction_id::text::bigint, stream_id, stream_type, version, event_type,
       schema_version, data::text, metadata::text, recorded_at
FROM event_store
WHERE (transaction_id, position) > (%s::text::xid8, %s)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY event_store.transaction_id, event_store.position LIMIT %s"""


def raw_read(conn: psycopg.Connection[Any]) -> int:
    tx, position, n = 0, 0, 0
    while rows := conn.execute(
        RAW_READ, (str(tx), position, READ_BATCH), prepare=True, binary=True
    ).fetchall():
        n += len(rows)
        position, tx = rows[-1][0], rows[-1][1]
    return n


def rebuild(name: str) -> tuple[int, float]:
    from platform_core.projections.rebuild import ProjectionRebuild
    from platform_core.runtime import runtime

    report = ProjectionRebuild(runtime().projections, name).run()
    return report.events, report.seconds


def reset_projections() -> None:
    """Empty the read models and forget the checkpoints: the projector starts from 0."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE read_order_summary, read_product_stock")
        cursor.execute("DELETE FROM projection_checkpoints")


def catch_up_from_zero() -> tuple[int, float]:
    """The live projector catching up from checkpoint 0: (events read, seconds)."""
    from platform_core.runtime import runtime

    reset_projections()
    start = time.perf_counter()
    read = runtime().projections.catch_up()
    return read, time.perf_counter() - start


def write_log(url: str, sizes: Sizes, flat: dict[str, Any]) -> int:
    from platform_core.storage.sql_store import event_store_for

    log(f"writing a log of about {sizes.events:,} events ...")
    writer = LogWriter()
    start = time.perf_counter()
    writer.write(sizes.events)
    events = writer.events
    flat["log_events"], flat["log_orders"], flat["log_products"] = events, writer.orders, PRODUCTS
    flat["log_write_events_per_s"] = events / (time.perf_counter() - start)
    log(f"  {events:,} events, {writer.orders:,} orders: {flat['log_write_events_per_s']:,.0f}/s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE event_store")
    wait_for_log(url, event_store_for())
    return events


def run_rebuilds(url: str, sizes: Sizes, flat: dict[str, Any]) -> None:
    """Raw read and both rebuilds in interleaved rounds, then one catch-up from 0 right
    after a raw read (it takes long enough that one paired run is what fits)."""
    events = write_log(url, sizes, flat)
    raw = psycopg.connect(url, autocommit=True)

    def expect(read: int, what: str, factor: int = 1) -> None:
        if read != events * factor:
            raise RuntimeError(f"{what} read {read} events, expected {events * factor}")

    def raw_rate() -> float:
        start = time.perf_counter()
        n = raw_read(raw)
        expect(n, "raw")
        return n / (time.perf_counter() - start)

    def rebuild_rate(name: str) -> Callable[[], float]:
        def run() -> float:
            n, seconds = rebuild(name)
            expect(n, f"rebuild {name}")
            return n / seconds

        return run

    contenders = {
        "raw_read": raw_rate,
        **{f"rebuild_{name}": rebuild_rate(name) for name in PROJECTIONS},
    }
    log(f"rebuild rounds ({sizes.rounds}, after a warm-up round) ...")
    busy0 = machine_cpu_seconds()
    try:
        results = interleaved(contenders, sizes.rounds)
        busy1 = machine_cpu_seconds()
        flat["rebuild_machine_busy_pct"] = 100 * (busy1[0] - busy0[0]) / (busy1[1] - busy0[1])
        for name, values in results.items():
            flat[f"{name}_events_per_s"] = median(values)
            flat[f"{name}_events_per_s_min"], flat[f"{name}_events_per_s_max"] = (
                min(values),
                max(values),
            )
            if name != "raw_read":
                flat[f"{name}_raw_ratio"] = paired_ratio(values, results["raw_read"])
        log("catch-up from checkpoint 0 ...")
        beside = raw_rate()
        read, seconds = catch_up_from_zero()
        expect(read, "catch-up", factor=len(PROJECTIONS))
    finally:
        raw.close()
    flat["catch_up_events_per_s"] = events / seconds
    flat["catch_up_raw_ratio"] = flat["catch_up_events_per_s"] / beside


# --------------------------------------------------------------------------- profile

Part = tuple[str, str, frozenset[str]]  # label, file (path suffix), function names


def _part(label: str, path: str, *functions: str) -> Part:
    return label, path, frozenset(functions)


HANDLERS = "on_*"  # a projection's event handlers
REBUILD_PARTS = (
    _part("read_all: SQL, fetch, RecordedEvent", "platform_core/storage/sql_store.py", "read_all"),
    _part("  of which rows to RecordedEvent", "platform_core/storage/sql_store.py", "_recorded"),
    _part("apply: decode + handlers", "platform_core/projections/projector.py", "apply"),
    _part("  of which codec.decode", "platform_core/eventsourcing/serialization.py", "decode"),
    _part("  of which the projection's handlers", "projections/", HANDLERS),
    _part(
        "write rows: COPY new, upsert seen",
        "platform_core/projections/read_models.py",
        "insert",
        "upsert",
    ),
    _part("swap: DELETE + INSERT ... SELECT", "platform_core/projections/rebuild.py", "_swap"),
    _part(
        "create/drop shadow tables",
        "platform_core/projections/rebuild.py",
        "_create_shadows",
        "_drop_shadows",
    ),
)
CATCH_UP_PARTS = (
    _part("read_all: SQL, fetch, RecordedEvent", "platform_core/storage/sql_store.py", "read_all"),
    _part("apply: decode + handlers", "platform_core/projections/projector.py", "apply"),
    _part("  of which loading rows", "platform_core/projections/read_models.py", "get", "preload"),
    _part("write rows: upsert", "platform_core/projections/read_models.py", "insert", "upsert"),
    _part("announce: frames for websocket clients", "projections/live.py", "announce_orders"),
    _part("  of which order_update (the frame's JSON)", "projections/live.py", "order_update"),
    _part(
        "checkpoint: lock, advance",
        "platform_core/projections/checkpoints.py",
        "locked_checkpoint",
        "advance",
    ),
)


@contextlib.contextmanager
def py_spy(output: Path, rate: int = 250) -> Iterator[None]:
    """Sample this process (every thread, idle ones left out) with py-spy into `output`
    (raw collapsed stacks) while the block runs."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        exe = Path(shutil.which("py-spy") or "py-spy")
    command = [str(exe), "record", "--pid", str(os.getpid()), "--rate", str(rate)]
    command += ["--format", "raw", "--nonblocking", "--output", str(output)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the work starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=5)


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw output: (frames outermost first, as "function (file)"; samples)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            stacks.append((frames, int(count)))
    return stacks


def _is(frame: str, path: str, functions: frozenset[str]) -> bool:
    qualified, _, where = frame.partition(" (")
    if path not in where:
        return False
    function = qualified.rpartition(".")[2]  # py-spy names methods Class.method
    return function in functions or (HANDLERS in functions and function.startswith("on_"))


def print_profile(stacks: list[tuple[list[str], int]], rate: int, parts: Iterable[Part]) -> None:
    """The top 10 functions by samples that have them on the stack, and the parts."""
    total = sum(count for _, count in stacks) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        # Frames of files without a folder are this script's and the stdlib's entry points.
        for frame in {f for f in frames if "/" in f.partition(" (")[2]}:
            inclusive[frame] += count
    rows = [
        [_short(frame), f"{count / rate:.2f}", f"{100 * count / total:.0f}%"]
        for frame, count in inclusive.most_common(10)
    ]
    print(render_table(["on the stack (top 10)", "CPU s", "share"], rows))
    rows = []
    for label, path, functions in parts:
        count = sum(c for frames, c in stacks if any(_is(f, path, functions) for f in frames))
        rows.append([label, f"{count / rate:.2f}", f"{100 * count / total:.0f}%"])
    print(render_table(["where the time goes", "CPU s", "share"], rows))


def profile(flat: dict[str, Any], batches: int, logdir: Path, rate: int = 250) -> None:
    """py-spy over one order_summary rebuild, then over the live projector's first
    `batches` batches per projection from checkpoint 0; print where the time goes."""
    from platform_core.runtime import runtime

    output = logdir / "rebuild.spy"
    with py_spy(output, rate):
        events, seconds = rebuild("order_summary")
    print(f"\npy-spy ({rate} Hz) over one order_summary rebuild: {events:,} events in")
    print(f"{seconds:.2f} s ({events / seconds:,.0f}/s); every thread, idle time left out:")
    print_profile(read_stacks(output), rate, REBUILD_PARTS)

    runner, output = runtime().projections, logdir / "catch-up.spy"
    reset_projections()
    with py_spy(output, rate):
        for _ in range(batches):
            for name in runner.names:
                runner.run_batch(name)
    print(f"\npy-spy over the live projector's first {batches} batches per projection from 0:")
    print_profile(read_stacks(output), rate, CATCH_UP_PARTS)
    for name in PROJECTIONS:  # the live server starts from rebuilt tables at the head
        rebuild(name)


def _short(frame: str) -> str:
    for marker in ("site-packages/", f"{ROOT.as_posix()}/"):
        frame = frame.replace(marker, "")
    return re.sub(r"\(/\S*/lib/python3\.\d+/", "(", frame)


# --------------------------------------------------------------------------- push part


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


class Client:
    """One websocket client: every order.updated frame with the time it arrived."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[tuple[float, str, str]] = []  # (received, position, order id)
        self.final: set[str] = set()  # orders seen confirmed or cancelled
        self.task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                received = time.time()
                frame = json.loads(message)
                if frame.get("type") != "order.updated":
                    continue
                order = frame.get("order") or {}
                self.frames.append((received, frame["position"], str(order.get("id", ""))))
                if order.get("status") in FINAL:
                    self.final.add(str(order["id"]))


async def connect_clients(port: int, token: str, count: int, into: list[Client]) -> None:
    """Connect `count` clients on ws/orders/, each added to `into` once connected (so the
    caller can close them whatever happens)."""
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(10)  # handshakes at a time: each one is a token lookup

    async def one() -> None:
        async with gate:
            ws = await connect(
                f"ws://127.0.0.1:{port}/ws/orders/",
                additional_headers={"Authorization": f"Token {token}"},
                ping_interval=None,
                open_timeout=60,
            )
        client = Client(ws)
        into.append(client)
        client.task = asyncio.create_task(client.listen())

    await asyncio.gather(*(one() for _ in range(count)))


async def close_clients(clients: Iterable[Client]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(), 5)
        if client.task is not None:
            client.task.cancel()
            with contextlib.suppress(BaseException):
                await client.task


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


class Placer(threading.Thread):
    """POSTs orders as the customer at a fixed rate (by schedule, not back to back)."""

    def __init__(self, port: int, token: str, skus: list[str], rate: float, count: int) -> None:
        super().__init__(name="placer", daemon=True)
        self.port, self.token, self.skus, self.rate, self.count = port, token, skus, rate, count
        self.placed: list[tuple[str, float, float]] = []  # (order id, sent, answered)
        self.errors: list[str] = []

    def run(self) -> None:
        rng, http = random.Random(7), Http(self.port, self.token)
        start = time.monotonic()
        try:
            for n in range(self.count):
                time.sleep(max(0.0, start + n / self.rate - time.monotonic()))
                lines = rng.sample(self.skus, rng.choice((1, 1, 2)))
                body = {
                    "items": [{"sku": sku, "quantity": rng.randint(1, 3)} for sku in lines],
                    "shipping_address": ADDRESS,
                    "payment_token": "tok_visa",
                }
                sent = time.time()
                status, answer = http.request("POST", "/api/orders/", body)
                if status != 202:
                    self.errors.append(f"{status} {answer[:120]!r}")
                    continue
                self.placed.append((str(json.loads(answer)["id"]), sent, time.time()))
        except Exception as error:  # reported by the caller
            self.errors.append(repr(error))
        finally:
            http.close()


async def place_and_listen(
    port: int, token: str, skus: list[str], clients: list[Client], rate: float, count: int
) -> Placer:
    """Place `count` orders, then wait (up to 30 s) until every client saw each one end."""
    placer = Placer(port, token, skus, rate, count)
    placer.start()
    await asyncio.to_thread(placer.join)
    ids = {order_id for order_id, _, _ in placer.placed}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not ids <= c.final for c in clients):
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # frames for positions after the final one (none expected)
    return placer


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


# --------------------------------------------------------------------------- report


def verdict(flat: dict[str, Any], metric: str) -> str:
    if metric not in flat:
        return ""
    comparison, target, _ = TARGETS[metric]
    met = flat[metric] >= target if comparison == ">=" else flat[metric] <= target
    return "met" if met else "MISSED"


def report_rows(flat: dict[str, Any]) -> list[tuple[str, str, str, str | None]]:
    """(label, unit, metric, ratio metric) of the table's rows, for what was measured."""
    rows: list[tuple[str, str, str, str | None]] = []
    if "log_events" in flat:
        rows += [
            (f"raw read, {flat['log_events']:,} events", "events/s", "raw_read_events_per_s", None),
        ]
        for name in PROJECTIONS:
            rows.append(
                (
                    f"rebuild {name}",
                    "events/s",
                    f"rebuild_{name}_events_per_s",
                    f"rebuild_{name}_raw_ratio",
                )
            )
        rows.append(
            (
                "live projector from 0, both",
                "events/s",
                "catch_up_events_per_s",
                "catch_up_raw_ratio",
            )
        )
    if "push_latency_p50_ms" in flat:
        clients = flat["push_clients"]
        rows += [
            (f"commit -> {clients} ws clients p50", "ms", "push_latency_p50_ms", None),
            (f"commit -> {clients} ws clients p90", "ms", "push_latency_p90_ms", None),
            (f"commit -> {clients} ws clients p99", "ms", "push_latency_p99_ms", None),
            ("  first client to get a frame p50", "ms", "push_first_client_p50_ms", None),
            ("  commit -> read model (projector) p50", "ms", "push_read_model_p50_ms", None),
            ("  commit -> read model (projector) p99", "ms", "push_read_model_p99_ms", None),
            ("    commit -> visible in the log p50", "ms", "push_visible_p50_ms", None),
            ("    commit -> visible in the log p99", "ms", "push_visible_p99_ms", None),
            ("    visible -> read model p50", "ms", "push_visible_to_read_model_p50_ms", None),
            ("    visible -> read model p99", "ms", "push_visible_to_read_model_p99_ms", None),
            (
                "  read model -> first client p50",
                "ms",
                "push_read_model_to_first_client_p50_ms",
                None,
            ),
            (
                "  read model -> first client p99",
                "ms",
                "push_read_model_to_first_client_p99_ms",
                None,
            ),
            ("  first to last client p50", "ms", "push_fanout_spread_p50_ms", None),
            ("  first to last client p99", "ms", "push_fanout_spread_p99_ms", None),
            ("frames per client", "frames", "push_frames_per_client_mean", None),
        ]
    return rows


def print_report(flat: dict[str, Any], sizes: Sizes) -> None:
    f = flat.get
    table = []
    for label, unit, metric, ratio in report_rows(flat):
        target = ratio if ratio in TARGETS else metric if metric in TARGETS else None
        table.append(
            [
                label,
                unit,
                format_number(f(metric)),
                f"{f(ratio):.2f}x" if ratio else "-",
                TARGETS[target][2] if target else "",
                verdict(flat, target) if target else "",
            ]
        )
    print()
    print(render_table(["workload", "unit", "ours", "ours/raw", "target", ""], table))
    met = sum(verdict(flat, k) == "met" for k in TARGETS)
    total = sum(k in flat for k in TARGETS)
    flat.update({"targets_met": met, "targets_total": total})
    for metric in TARGETS:
        if metric in flat:
            flat[f"{metric}_target_met"] = int(verdict(flat, metric) == "met")
    notes = [f"\n{met} of {total} targets met."]
    if "log_events" in flat:
        notes.append(
            f"Log: {f('log_events'):,} events of {f('log_orders'):,} orders and {PRODUCTS}"
            f" products, written at {f('log_write_events_per_s'):,.0f} events/s. Rebuilds:"
            f" medians of {sizes.rounds} interleaved rounds, ratios the medians of per-round"
            " ratios; the live projector: one run, beside one raw read. The machine was"
            f" {f('rebuild_machine_busy_pct'):.0f}% busy during the rounds (this process and"
            " PostgreSQL use about one core of it)."
        )
    if "push_orders" in flat:
        notes.append(
            f"Push: {f('push_orders')} orders at {sizes.order_rate}/s ({f('push_post_errors')}"
            f" POST errors, POST p50 {f('post_p50_ms'):.0f} ms), {f('push_frames'):,} frames"
            f" ({f('push_frames_per_client_min')} to {f('push_frames_per_client_max')} per"
            f" client, {f('push_frames_per_order'):.1f} per order and client),"
            f" {f('push_missing_final')} final states missed. CPU during the phase: the"
            f" server {f('push_server_cpu_pct', 0):.0f}% of a core, this process (the clients)"
            f" {f('push_bench_cpu_pct'):.0f}%, the machine {f('push_machine_busy_pct'):.0f}%"
            " busy."
        )
        kinds = sorted(k for k in flat if k.startswith("push_first_client_p50_ms_"))
        by_kind = ", ".join(
            f"{k.removeprefix('push_first_client_p50_ms_')} {flat[k]:.0f}" for k in kinds
        )
        notes.append(
            f"First client p50 by the event a frame shows (ms): {by_kind}. The POST's answer"
            f" came {f('post_answered_after_recorded_p50_ms'):.0f} ms (p50) after its"
            " OrderPlaced's recorded_at, which is the transaction's start, not its commit."
        )
    print(" ".join(notes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size (< 60 s)")
    parser.add_argument("--events", type=int, help="log size (default 100,000)")
    parser.add_argument("--rounds", type=int, help="interleaved rebuild rounds")
    parser.add_argument("--clients", type=int, help="websocket clients (default 100)")
    parser.add_argument("--order-rate", type=float, help="orders/s in the push phase")
    parser.add_argument("--push-seconds", type=float, help="length of the push phase")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy over a rebuild and the live projector"
    )
    parser.add_argument(
        "--only", default="rebuild,push", help="comma-separated subset of: rebuild, push"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to (re)create; its name must start with bench_",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the server's log")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    overrides = {
        "events": args.events,
        "rounds": args.rounds,
        "clients": args.clients,
        "order_rate": args.order_rate,
        "push_seconds": args.push_seconds,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    only = set(args.only.split(","))

    started = time.perf_counter()
    logdir = Path(tempfile.mkdtemp(prefix="bench-projections-"))

    def abort(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, abort)
    alarm = threading.Timer(sizes.timeout, lambda: os.kill(os.getpid(), signal.SIGTERM))
    alarm.daemon = True
    alarm.start()
    # The bench's own process pushes nowhere: the in-memory channel layer, no consumers.
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        os.environ.pop(name, None)
    flat: dict[str, Any] = {}
    try:
        url = args.database_url
        recreate_database(url)
        setup_django(url)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        if "rebuild" in only:
            run_rebuilds(url, sizes, flat)
            if args.profile:
                profile(flat, batches=20, logdir=logdir)
        connections.close_all()
        if "push" in only:
            run_push(url, sizes, logdir, flat)
    finally:
        alarm.cancel()
        if not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
    print_report(flat, sizes)
    flat.update(
        {
            "rounds": sizes.rounds,
            "order_rate": sizes.order_rate,
            "quick": int(args.quick),
            "machine": machine(),
            "when": now_iso(),
            "duration_s": round(time.perf_counter() - started, 1),
        }
    )
    flat = {k: round(v, 3) if isinstance(v, float) else v for k, v in flat.items()}
    path = write_results("projections", flat, args.output)
    print(
        f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        f" in {flat['duration_s']} s"
    )


if __name__ == "__main__":
    main()

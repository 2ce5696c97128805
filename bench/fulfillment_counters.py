"""What fulfillment.py counts around its saga phase: where each order's time went, stage by
stage, from the database's trail (outbox, saga_steps); the CPU each process used (/proc,
PostgreSQL backends by application_name); PostgreSQL's session, commit and row counters;
and what one new PostgreSQL connection costs."""

from __future__ import annotations

import collections
import os
import statistics
import threading
import time
from collections.abc import Sequence
from urllib.parse import urlparse

import psycopg
from _common import APP_PREFIX, CLK_TCK, machine_cpu_seconds, percentile, proc_stat
from fulfillment_load import Placed

# --------------------------------------------------------------------------- stages


STAGE_EVENTS = {  # outbox event type -> the saga step whose reply it is (None: the start)
    "orders.order-placed.v2": None,
    "inventory.stock-reserved.v1": "reserve-stock",
    "payments.payment-captured.v1": "take-payment",
    "shipping.shipment-created.v1": "book-shipment",
    "orders.order-confirmed.v1": "confirm-order",
}
STEP_SHORT = {
    "reserve-stock": "reserve",
    "take-payment": "pay",
    "book-shipment": "ship",
    "confirm-order": "confirm",
}


def stage_timings(url: str, orders: Sequence[Placed]) -> list[tuple[str, list[float]]]:
    """Per order, the milliseconds each stage took, from the outbox (created, published),
    the saga's step history and the bench's own clock; in pipeline order."""
    ids = [p.order_id for p in orders if p.status == "confirmed"]
    with psycopg.connect(url, autocommit=True) as conn:
        outbox = conn.execute(
            "SELECT data::jsonb->>'order_id', event_type, extract(epoch FROM created_at),"
            " extract(epoch FROM published_at) FROM outbox"
            " WHERE event_type = ANY(%s) AND data::jsonb->>'order_id' = ANY(%s)",
            [list(STAGE_EVENTS), ids],
        ).fetchall()
        steps = conn.execute(
            "SELECT i.key, s.step, s.kind, extract(epoch FROM s.at) FROM saga_steps s"
            " JOIN saga_instances i ON i.id = s.instance_id WHERE i.key = ANY(%s)"
            " ORDER BY s.at, s.id",
            [ids],
        ).fetchall()
    created: dict[tuple[str, str], float] = {}
    published: dict[tuple[str, str], float] = {}
    for order_id, event_type, made, sent in outbox:
        created.setdefault((order_id, event_type), float(made))
        if sent is not None:
            published.setdefault((order_id, event_type), float(sent))
    step_at: dict[tuple[str, str, str], float] = {}
    for order_id, step, kind, at in steps:
        step_at.setdefault((order_id, step, kind), float(at))

    stages: dict[str, list[float]] = collections.defaultdict(list)
    for p in orders:
        if p.status != "confirmed" or p.confirmed is None:
            continue
        o = p.order_id
        try:
            placed = ("orders.order-placed.v2",)
            row: list[tuple[str, float]] = [
                ("POST until the order committed", created[(o, *placed)] - p.sent),
                ("  relay: placed -> published", published[(o, *placed)] - created[(o, *placed)]),
                (
                    "  Kafka + saga: published -> saga started",
                    step_at[(o, "saga", "started")] - published[(o, *placed)],
                ),
            ]
            for event_type, step in STAGE_EVENTS.items():
                if step is None:
                    continue
                short = STEP_SHORT[step]
                row.append(
                    (
                        f"{short}: saga -> RabbitMQ -> worker -> reply committed",
                        created[(o, event_type)] - step_at[(o, step, "command_sent")],
                    )
                )
                if step == "confirm-order":
                    break
                row.append(
                    (
                        f"  relay: {short} reply -> published",
                        published[(o, event_type)] - created[(o, event_type)],
                    )
                )
                row.append(
                    (
                        f"  Kafka + saga: {short} reply -> next command",
                        step_at[(o, step, "succeeded")] - published[(o, event_type)],
                    )
                )
            row.append(
                (
                    "projector: confirmed committed -> seen in read model",
                    p.confirmed - created[(o, "orders.order-confirmed.v1")],
                )
            )
        except KeyError:
            continue  # an order without a complete trail (counted as unattributed)
        for name, seconds in row:
            stages[name].append(seconds * 1000)
    order = [
        "POST until the order committed",
        "  relay: placed -> published",
        "  Kafka + saga: published -> saga started",
    ]
    for step in ("reserve-stock", "take-payment", "book-shipment"):
        s = STEP_SHORT[step]
        order += [
            f"{s}: saga -> RabbitMQ -> worker -> reply committed",
            f"  relay: {s} reply -> published",
            f"  Kafka + saga: {s} reply -> next command",
        ]
    order += [
        "confirm: saga -> RabbitMQ -> worker -> reply committed",
        "projector: confirmed committed -> seen in read model",
    ]
    return [(name, stages[name]) for name in order if stages.get(name)]


def stage_groups(stages: Sequence[tuple[str, list[float]]]) -> dict[str, float]:
    """Median milliseconds per order spent in each kind of hop, its hops summed per order
    (every stage list holds the same orders in the same order)."""
    kinds = {
        "http": "POST until",
        "relay": "relay:",
        "kafka_saga": "Kafka + saga",
        "command": "saga -> RabbitMQ",
        "projector": "projector:",
    }
    out = {}
    for kind, marker in kinds.items():
        lists = [values for name, values in stages if marker in name]
        if lists:
            per_order = [sum(values) for values in zip(*lists, strict=True)]
            out[f"stage_{kind}_p50_ms"] = percentile(per_order, 50)
    return out


# --------------------------------------------------------------------------- CPU


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


EXITED_BACKENDS = "postgres: exited backends (web, worker; any database)"


class CpuMeter:
    """CPU seconds per role over a phase, sampling /proc twice a second: each started
    process with its descendants, the PostgreSQL backends of the bench database, RabbitMQ,
    Redis, and this process (the HTTP clients and the watcher). PostgreSQL backends that
    exit during the phase (a connection per request or task) are counted whole from the
    postmaster's reaped-children time instead, which also holds the exited backends of
    other databases on the server: an upper bound."""

    def __init__(self, roles: dict[int, str], url: str, every: float = 0.5) -> None:
        self.roles, self.every = roles, every
        self.dbname = urlparse(url).path.lstrip("/")
        self._pg = psycopg.connect(url, autocommit=True, application_name=f"{APP_PREFIX}meter")
        self.backends: dict[int, str] = {}  # backend pid -> the role it served
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.alive: set[int] = set()
        row = self._pg.execute("SELECT pg_backend_pid()").fetchone()
        stat = proc_stat(int(row[0])) if row else None
        self.postmaster = stat[0] if stat else 0
        self.reaped0 = _reaped_cpu(self.postmaster) if self.postmaster else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self.busy0 = machine_cpu_seconds()
        self._sample(initial=True)
        self._thread.start()

    def _role(self, pid: int, ppid: int, comm: str, parents: dict[int, int]) -> str | None:
        seen = pid
        for _ in range(6):
            if seen in self.roles:
                return self.roles[seen]
            seen = parents.get(seen, 0)
            if seen <= 1:
                break
        if comm == "postgres" and f" {self.dbname} " in _cmdline(pid):
            served = self.backends.get(pid)
            return f"postgres for {served}" if served else "postgres (other bench db backends)"
        if comm.startswith("beam") or comm in {"erl_child_setup", "inet_gethost"}:
            return "rabbitmq (server)"
        if comm.startswith("redis-server"):
            return "redis (server)"
        return None

    def _sample(self, initial: bool = False) -> None:
        for pid, name in self._pg.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s",
            [self.dbname],
        ).fetchall():
            if name.startswith(APP_PREFIX):
                self.backends.setdefault(pid, name.removeprefix(APP_PREFIX))
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = proc_stat(int(entry))
                if stat is not None:
                    stats[int(entry)] = stat
        parents = {pid: s[0] for pid, s in stats.items()}
        self.alive = set(stats)
        for pid, (ppid, comm, cpu) in stats.items():
            known = self.last.get(pid)
            role = known[0] if known else self._role(pid, ppid, comm, parents)
            if role is None:
                continue
            if pid not in self.first:
                self.first[pid] = cpu if initial else 0.0
            self.last[pid] = (role, cpu)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def stop(self) -> tuple[dict[str, float], float, float]:
        """(CPU seconds by role, machine CPU busy seconds, machine CPU seconds)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()
        self._pg.close()
        busy1 = machine_cpu_seconds()
        by_role: dict[str, float] = collections.defaultdict(float)
        for pid, (role, cpu) in self.last.items():
            if role.startswith("postgres") and pid not in self.alive:
                continue  # exited: in the postmaster's reaped time below
            by_role[role] += max(0.0, cpu - self.first.get(pid, 0.0))
        if self.postmaster:
            time.sleep(0.2)  # let the postmaster reap the last ones
            by_role[EXITED_BACKENDS] = _reaped_cpu(self.postmaster) - self.reaped0
        return dict(by_role), busy1[0] - self.busy0[0], busy1[1] - self.busy0[1]


def _reaped_cpu(pid: int) -> float:
    """CPU seconds of a process's exited and reaped children (cutime + cstime)."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def connection_cost(url: str, count: int = 60, rounds: int = 3) -> tuple[float, float]:
    """What one new PostgreSQL connection costs: (server CPU ms, from the postmaster's
    reaped-children time, so other clients' exiting backends add noise; the median of
    `rounds`), (client wall ms to connect and close)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        stat = proc_stat(int(row[0])) if row else None
    if stat is None:
        raise RuntimeError("cannot find the PostgreSQL postmaster in /proc")
    postmaster = stat[0]
    server, client = [], []
    for _ in range(rounds):
        before, start = _reaped_cpu(postmaster), time.perf_counter()
        for _ in range(count):
            psycopg.connect(url, application_name=f"{APP_PREFIX}connection-cost").close()
        client.append((time.perf_counter() - start) * 1000 / count)
        time.sleep(0.3)  # let the postmaster reap the last ones
        server.append((_reaped_cpu(postmaster) - before) * 1000 / count)
    return statistics.median(server), statistics.median(client)


def pg_counters(url: str) -> dict[str, float]:
    """The bench database's counters (sessions, transactions committed and rolled back,
    rows inserted and updated) and the server's next transaction id: the transactions
    that wrote (took an id) in between, read-only ones left out."""
    name = urlparse(url).path.lstrip("/")
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions, xact_commit, xact_rollback, tup_inserted, tup_updated,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
            " FROM pg_stat_database WHERE datname = %s",
            [name],
        ).fetchone()
    assert row is not None
    keys = ("sessions", "commits", "rollbacks", "inserted", "updated", "writing_transactions")
    return dict(zip(keys, (float(v) for v in row), strict=True))


def rows_inserted(url: str) -> dict[str, int]:
    """Rows inserted so far, by table of the bench database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT relname, n_tup_ins FROM pg_stat_user_tables").fetchall()
    return {str(table): int(count) for table, count in rows}

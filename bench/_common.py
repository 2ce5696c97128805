"""Helpers shared by the benchmarks in bench/: machine description, interleaved rounds,
medians and percentiles, the printed table, targets and the results file, the benchmark
database and Django, subprocesses (platform_core.testing.fleet), the run's time limit, a
keep-alive HTTP client and the address every order ships to."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
from psycopg import sql

from platform_core.testing.fleet import Fleet, Proc, free_port

__all__ = ["Fleet", "Proc", "free_port"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
APP_PREFIX = "bench:"  # application_name of each benchmark process's PostgreSQL connections
# The Redis of the benchmarks that use one (channel layer, cache), keys under their own prefix.
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# The shipping address of every order a benchmark places or writes to its log.
ADDRESS = {"name": "Ada", "line1": "1 Road", "city": "Leeds", "postal_code": "LS1", "country": "GB"}


def machine() -> str:
    """CPU model, core count and memory of this machine, as one line."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def throughput(op: Callable[[], int], seconds: float) -> float:
    """Items per second: call `op` (which returns how many items it handled) until
    `seconds` have passed."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += op()
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def latency_ms(op: Callable[[], object], seconds: float, min_calls: int = 3) -> float:
    """Median milliseconds per call of `op`, calling it for about `seconds`."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter()
        op()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def interleaved(
    contenders: Mapping[str, Callable[[], float]], rounds: int, warmup: bool = True
) -> dict[str, list[float]]:
    """Run every contender once per round, rotating who goes first each round, so slow
    phases of a noisy machine hit all of them alike. Returns each one's per-round values."""
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(contenders[name]())
    return results


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-round ratios: each round's pair ran back to back."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def verdict(flat: Mapping[str, Any], metric: str, targets: Mapping[str, tuple[Any, ...]]) -> str:
    """Whether the metric met its target in `targets` (comparison, value, ...): "met" or
    "MISSED", "-" if it was not measured."""
    if metric not in flat:
        return "-"
    comparison, target = targets[metric][:2]
    met = flat[metric] >= target if comparison == ">=" else flat[metric] <= target
    return "met" if met else "MISSED"


def score_targets(flat: dict[str, Any], targets: Mapping[str, tuple[Any, ...]]) -> tuple[int, int]:
    """Note in `flat` which targets were met (<metric>_target_met, targets_met,
    targets_total); returns (met, measured)."""
    met = sum(verdict(flat, metric, targets) == "met" for metric in targets)
    total = sum(metric in flat for metric in targets)
    flat.update({"targets_met": met, "targets_total": total})
    for metric in targets:
        if metric in flat:
            flat[f"{metric}_target_met"] = int(verdict(flat, metric, targets) == "met")
    return met, total


def write_results(name: str, results: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write the flat metric -> number object (plus "machine" and "when")."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(results), indent=2, sort_keys=True) + "\n")
    return path


def setup_django(url: str) -> None:
    """Configure Django on the benchmark's database, production-like (no query log)."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", f"bench-{secrets.token_hex(32)}")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def recreate_database(url: str) -> None:
    """Drop and create the benchmark database; only names starting with bench_."""
    name = urlparse(url).path.lstrip("/")
    if not name.startswith("bench_"):
        raise SystemExit(f"refusing to drop database {name!r}: its name must start with bench_")
    with psycopg.connect(url, dbname="postgres", autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def wait_for_log(url: str, store: Any, timeout: float = 120.0) -> None:
    """Wait until `store` (on the database `url`) shows its whole log. Our log shows an
    event once no older transaction is running anywhere in the cluster, so a transaction
    that someone else (a test, another benchmark) opened before the log was written hides
    it until it ends."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT max(position) FROM event_store").fetchone()
    last = row[0] if row else None
    deadline = time.monotonic() + timeout
    while last is not None and store.head().position != last:
        if time.monotonic() > deadline:
            raise SystemExit("a transaction open elsewhere in the cluster hides the log")
        time.sleep(0.5)


# --------------------------------------------------------------------------- processes


def sigterm_after(seconds: float) -> threading.Timer:
    """Make SIGTERM raise KeyboardInterrupt, so that `finally` blocks stop what the run
    started, and send this process one after `seconds`: the whole run's time limit.
    Cancel the returned timer when the run ends."""

    def abort(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, abort)
    alarm = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGTERM))
    alarm.daemon = True
    alarm.start()
    return alarm


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def proc_stat(pid: int) -> tuple[int, str, float] | None:
    """(ppid, comm, CPU seconds used) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / CLK_TCK


class Http:
    """One keep-alive HTTP/1.1 connection (http.client), reconnecting once on a drop."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self._conn.request(method, path, payload, {**self.headers, **(headers or {})})
                response = self._conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_http(port: int, fleet: Fleet, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fleet.check_alive()
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = Http(port).request("GET", "/healthz")
            if status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer /healthz in {timeout:.0f} s")

"""Whether a StockItem's load and append cost stay flat as orders hold its stock, on
PostgreSQL.

    .venv/bin/python bench/stock.py            # default size, about 15 seconds
    .venv/bin/python bench/stock.py --quick    # smoke size for CI, a few seconds

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_stock; the name must start with "bench_"),
migrates it and writes two products through the command path's repository
(`PostgresEventStore`, `DjangoSnapshotStore`, snapshots every SNAPSHOT_EVERY events):

  none    --holds orders reserved one unit each, then all released: nothing outstanding
  held    --holds orders reserved one unit each, then as many restocks: all outstanding

Both streams have the same length, so only the outstanding holds differ. Workloads, the two
products taking turns call by call, who goes first alternating:

  load    Repository.get, as every command on the product starts
  append  one command in transaction.atomic(): load, reserve (or release, alternately) one
          unit for an order of its own, save; a multiple of SNAPSHOT_EVERY a round, so both
          products pass the same snapshot points

The figure is held/none, the median of per-round ratios; target <= 1.2x for each. It prints
the table and writes bench/results/stock.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    format_number,
    log,
    machine,
    now_iso,
    paired_ratio,
    recreate_database,
    render_table,
    score_targets,
    setup_django,
    verdict,
    write_results,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_stock"
PRODUCTS = {"none": "STOCK-NONE", "held": "STOCK-HELD"}
BATCH = 100  # events a save while writing the streams
TARGETS = {"load_ratio": ("<=", 1.2), "append_ratio": ("<=", 1.2)}


@dataclass(frozen=True)
class Sizes:
    rounds: int
    loads: int  # loads of each product a round
    appends: int  # commands on each product a round


QUICK = Sizes(rounds=3, loads=100, appends=20)
DEFAULT = Sizes(rounds=9, loads=400, appends=100)


def stock_repository() -> Any:
    from django.conf import settings

    from config.bootstrap import build_codec
    from inventory.domain.stock import StockItem
    from platform_core.eventsourcing.repository import Repository
    from platform_core.storage.django_snapshots import DjangoSnapshotStore
    from platform_core.storage.sql_store import PostgresEventStore

    return Repository(
        StockItem,
        store=PostgresEventStore(),
        codec=build_codec(),
        snapshots=DjangoSnapshotStore(),
        snapshot_every=settings.SNAPSHOT_EVERY,
    )


def write_product(repo: Any, sku: str, holds: int, *, keep_held: bool) -> None:
    """`holds` one-unit reservations, then as many releases (or restocks, keeping them)."""
    from django.db import transaction

    from inventory.domain.stock import StockItem

    item = StockItem.register(sku=sku, name=sku.title(), price=Decimal("1.00"), initial_stock=holds)
    orders = [uuid.UUID(int=n) for n in range(1, holds + 1)]
    steps = [partial(item.reserve, order_id, 1) for order_id in orders]
    steps += [
        partial(item.restock, 1) if keep_held else partial(item.release, order_id, 1)
        for order_id in orders
    ]
    for step in steps:
        step()
        if item.pending_count == BATCH:
            with transaction.atomic():
                repo.save(item)
    with transaction.atomic():
        repo.save(item)


def alternating_ms(ops: dict[str, Callable[[], object]], calls: int) -> dict[str, float]:
    """Each op's median milliseconds over `calls` calls, the ops taking turns call by call
    (who goes first alternating), so a slow moment of a shared machine hits both alike."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for call in range(calls):
        for name in names[call % 2 :] + names[: call % 2]:
            start = time.perf_counter()
            ops[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def command(repo: Any, sku: str) -> Callable[[], None]:
    """One command on the product: reserve a unit for a new order, then release it next."""
    from django.db import transaction

    held: list[uuid.UUID] = []

    def run() -> None:
        with transaction.atomic():
            item = repo.get(sku)
            if held:
                item.release(held.pop(), 1)
            else:
                held.append(uuid.uuid4())
                item.reserve(held[0], 1)
            repo.save(item)

    return run


def snapshot_bytes(sku: str) -> int:
    from platform_core.models import SnapshotRecord

    return len(SnapshotRecord.objects.get(stream_id=f"stock-{sku}").state.encode())


def run(sizes: Sizes, holds: int) -> dict[str, float]:
    repo = stock_repository()
    for name, sku in PRODUCTS.items():
        log(f"writing {sku}: {holds:,} reservations, {name} outstanding ...")
        write_product(repo, sku, holds, keep_held=name == "held")
        if repo.get(sku).state.reserved != (holds if name == "held" else 0):
            raise RuntimeError(f"{sku} did not load with its reservations")
    flat: dict[str, float] = {"holds": holds}
    workloads = {
        "load": ({n: partial(repo.get, sku) for n, sku in PRODUCTS.items()}, sizes.loads),
        "append": ({n: command(repo, sku) for n, sku in PRODUCTS.items()}, sizes.appends),
    }
    for workload, (ops, calls) in workloads.items():
        log(f"{workload}: none, held")
        alternating_ms(ops, calls)  # warm-up
        rounds = [alternating_ms(ops, calls) for _ in range(sizes.rounds)]
        for name in PRODUCTS:
            flat[f"{workload}_{name}_ms"] = statistics.median(r[name] for r in rounds)
        flat[f"{workload}_ratio"] = paired_ratio(
            [r["held"] for r in rounds], [r["none"] for r in rounds]
        )
    for name, sku in PRODUCTS.items():
        flat[f"snapshot_{name}_bytes"] = snapshot_bytes(sku)
    return flat


def report(flat: dict[str, Any]) -> None:
    rows = [
        [
            f"{workload} (ms)",
            format_number(flat[f"{workload}_none_ms"]),
            format_number(flat[f"{workload}_held_ms"]),
            f"{flat[f'{workload}_ratio']:.2f}x",
            f"<= {TARGETS[f'{workload}_ratio'][1]}x",
            "MET" if verdict(flat, f"{workload}_ratio", TARGETS) == "met" else "NOT MET",
        ]
        for workload in ("load", "append")
    ]
    rows.append(
        [
            "snapshot (bytes)",
            format_number(flat["snapshot_none_bytes"]),
            format_number(flat["snapshot_held_bytes"]),
            f"{flat['snapshot_held_bytes'] / flat['snapshot_none_bytes']:.2f}x",
            "",
            "",
        ]
    )
    held = f"{flat['holds']:,.0f} held"
    print(render_table(["workload", "none held", held, "held/none", "target", ""], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--quick", action="store_true", help="smoke size (CI)")
    parser.add_argument("--holds", type=int, default=10_000, help="outstanding reservations")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    recreate_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    flat = run(sizes, args.holds)
    met, total = score_targets(flat, TARGETS)
    print(f"machine: {machine()}  when: {now_iso()}  size: {'quick' if args.quick else 'default'}")
    report(flat)
    print(f"targets met: {met} of {total}")
    if not args.quick or args.output:
        path = write_results(
            "stock", {**flat, "machine": machine(), "when": now_iso()}, args.output
        )
        log(f"results: {path}")


if __name__ == "__main__":
    main()

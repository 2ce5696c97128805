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
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _path in (str(BENCH), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    machine,
    now_iso,
    recreate_database,
    setup_django,
    sigterm_after,
    write_results,
)
from projections_profile import profile  # noqa: E402
from projections_push import run_push  # noqa: E402
from projections_rebuild import run_rebuilds  # noqa: E402
from projections_report import print_report  # noqa: E402
from projections_sizes import DEFAULT, QUICK  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_projections"


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
    alarm = sigterm_after(sizes.timeout)
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

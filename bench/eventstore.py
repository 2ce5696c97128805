"""Event store benchmark on PostgreSQL: ours vs the `eventsourcing` library vs raw psycopg.

    .venv/bin/python bench/eventstore.py            # default size, a few minutes
    .venv/bin/python bench/eventstore.py --quick    # smoke size for CI, under a minute

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_eventstore; the name must start with "bench_"),
migrates it, and puts three equivalent stores side by side in it:

  ours     platform_core.storage.sql_store.PostgresEventStore on Django's connection (and
           platform_core.eventsourcing.repository.Repository for aggregate loads);
  library  eventsourcing 9.5 with its PostgreSQL persistence, default settings (its
           application recorder for appends and log reads, its Application repository for
           aggregate loads);
  raw      psycopg with no framework: an autocommit connection, one INSERT (committed by
           itself) per round trip into `raw_events`, a plain table with the same columns as
           ours minus the transaction id (a batch goes in as INSERT ... SELECT FROM
           unnest() of binary arrays, the fastest single statement), and plain SELECTs.

Indented rows of the table are extra contenders that explain a number (the same SQL on
a plain connection, a bare INSERT into our table, ...). Every workload runs all
contenders once per round, rotating who goes first, for several rounds; the table shows
medians, and a ratio is the median of the per-round ratios. It
prints the table and writes bench/results/eventstore.json (metric name -> number).
See docs/benchmarks.md for what bounds each number.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import psycopg  # noqa: E402
from _common import recreate_database, setup_django, write_results  # noqa: E402
from eventstore_contenders import RAW_TABLE, LibraryBench, library_env  # noqa: E402
from eventstore_report import report  # noqa: E402
from eventstore_workloads import (  # noqa: E402
    DEFAULT,
    QUICK,
    Results,
    Sizes,
    run_appends,
    run_loads,
    run_log_read,
    run_writers,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_eventstore"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (CI, < 60 s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to (re)create; its name must start with bench_",
    )
    parser.add_argument(
        "--only",
        default="log,load,append,writers",
        help="comma-separated subset of: log, load, append, writers",
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds, "writer_rounds": args.rounds})
    only = set(args.only.split(","))
    url = args.database_url

    started = time.perf_counter()
    recreate_database(url)
    setup_django(url)
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    app = LibraryBench(env=library_env(url))

    results: Results = {}
    if "log" in only:
        run_log_read(url, sizes, app, results)
    if "load" in only:
        run_loads(url, sizes, app, results)
    if "append" in only:
        run_appends(url, sizes, app, results)
    # Writer processes fork from here: no connection may be open across the fork.
    app.close()
    connections.close_all()
    if "writers" in only:
        run_writers(url, sizes, results)

    print()
    flat = report(results, sizes, args)
    flat["duration_s"] = round(time.perf_counter() - started, 1)
    path = write_results("eventstore", flat, args.output)
    print(
        f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        f" in {flat['duration_s']} s"
    )


if __name__ == "__main__":
    main()

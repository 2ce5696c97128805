"""Order-fulfillment benchmark: orders placed over HTTP by concurrent clients, through the
whole saga on the real transports, beside a bare DRF insert served the same way.

    .venv/bin/python bench/fulfillment.py            # 2,000 orders, 32 clients, ~4.5 minutes
    .venv/bin/python bench/fulfillment.py --quick    # CI smoke, about 45 s

Everything runs on this machine, on loopback, started by the benchmark as subprocesses and
stopped at the end (each in its own process group, SIGTERM then SIGKILL, bounded):

  PostgreSQL   database bench_fulfillment, recreated and migrated each run (seed_demo runs)
  RabbitMQ     virtual host bench_fulfillment, recreated each run (rabbitmqctl), so no other
               worker or test on the server shares the command queues
  Redis        the cache (Idempotency-Key in-flight locks), keys prefixed per run
  Kafka peer   librdkafka's mock cluster in a child process (as bench/messaging.py does)
  web          daphne config.asgi:application                          (the product)
  control      daphne control_urls:application (bench/control_urls.py: the product's
               settings, middleware and DRF token auth; one view that inserts one row)
  relay        manage.py relay_outbox (woken by NOTIFY at commit; --poll P to force polling)
  projector    manage.py run_projections (the same)
  saga timers  manage.py run_saga_timers
  consumers    manage.py consume order-fulfillment | orders | inventory, each through this
               file's --serve-consumer wrapper, which only lowers fetch.wait.max.ms (see below)
  worker       celery -A config.celery:app worker -Q orders,inventory,payments,shipping
               -P threads -c 8 (as docker-compose.yml; --celery-pool, --celery-concurrency)

Phases:
  saga     M clients (default 32), closed loop: each POSTs an order (Idempotency-Key, token
           auth, tok_visa, 1-2 lines over 50 products), then waits until the read model
           (read_order_summary) shows it confirmed, then places the next; N orders after a
           warm-up. The bench watches that table every 10 ms with one query for the orders
           in flight. Reports orders confirmed per second (sustained: the middle 80% of the
           confirmations), POST p50/p99 under that load and POST->confirmed p50/p99, with
           the time each stage took (outbox, saga_steps, read model timestamps) and the CPU
           each process used (/proc; PostgreSQL backends by application_name, and the
           ones that exit during the phase from the postmaster's reaped-children time).
  solo     before it, one client alone: the pipeline's latency without queueing.
  profile  the same load for a few seconds with py-spy recording the busiest processes.
  post     the relay stopped (nothing downstream moves), M clients POST back to back:
           ours (with and without Idempotency-Key) and the control, interleaved rounds,
           rotating who goes first. Throughput and p50/p99; ratios are medians of the
           per-round ratios.

Database connections are those of the reference deployment (docker-compose.yml): both
Daphne processes share a psycopg pool per process (DATABASE_POOL), the Celery worker keeps
its connection across tasks (CONN_MAX_AGE with CELERY_DB_REUSE_MAX), and the long-running
loops keep theirs. --connections per-use measures the alternative: a new connection for
every request and every task (CONN_MAX_AGE=0, no pool), which is what Django does under
ASGI without a pool.

The mock broker answers an empty fetch only after the consumer's fetch.wait.max.ms (500 ms
by default) even when messages arrive meanwhile; a real broker answers as soon as data is
there. The consumers therefore run with fetch.wait.max.ms=10 (--mock-fetch-wait-ms), set
by --serve-consumer before it runs `consume`; nothing else differs from `manage.py consume`.

Prints the tables and writes bench/results/fulfillment.json; docs/benchmarks.md explains
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

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _path in (str(BENCH), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import machine, now_iso, sigterm_after, write_results  # noqa: E402
from fulfillment_fleet import CONNECTION_ENVS, serve_consumer  # noqa: E402
from fulfillment_load import DEFAULT, QUICK  # noqa: E402
from fulfillment_phases import run  # noqa: E402
from fulfillment_report import print_report  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_fulfillment"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size (< 90 s)")
    parser.add_argument("--orders", type=int, help="measured orders in the saga phase (N)")
    parser.add_argument("--clients", type=int, help="concurrent HTTP clients (M, default 32)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of the POST phase")
    parser.add_argument("--profile-seconds", type=float, help="py-spy recording (0: none)")
    parser.add_argument(
        "--profile",
        metavar="ROLE,...",
        help="the processes py-spy records, by role as the CPU table names them (e.g. "
        "relay,'consumer order-fulfillment'; default: the three busiest)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        help="relay_outbox and run_projections --poll seconds (default: theirs, 5 s: they "
        "are woken by PostgreSQL notifications and poll only as a safety net)",
    )
    parser.add_argument(
        "--celery-concurrency",
        type=int,
        default=8,
        help="celery worker -c (default 8, as docker-compose.yml)",
    )
    parser.add_argument(
        "--celery-pool",
        choices=("prefork", "threads"),
        default="threads",
        help="celery worker -P (default threads, as docker-compose.yml)",
    )
    parser.add_argument(
        "--mock-fetch-wait-ms",
        type=int,
        default=10,
        help="consumers' fetch.wait.max.ms against the mock broker",
    )
    parser.add_argument(
        "--connections",
        choices=sorted(CONNECTION_ENVS),
        default="reuse",
        help="reuse: as docker-compose.yml (a pool per web process, the worker keeps its"
        " connection); per-use: a new connection for every request and task",
    )
    parser.add_argument("--serve-consumer", metavar="GROUP", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor-consumer", metavar="BOOTSTRAP", help=argparse.SUPPRESS)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL),
        help="PostgreSQL database to (re)create; its name must start with bench_",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    if args.serve_consumer:
        serve_consumer(args.serve_consumer, args.mock_fetch_wait_ms)
        return
    if args.serve_floor_consumer:
        from floor_app import serve_floor_consumer

        serve_floor_consumer(args.serve_floor_consumer, args.mock_fetch_wait_ms)
        return
    sizes = QUICK if args.quick else DEFAULT
    overrides = {
        "orders": args.orders,
        "clients": args.clients,
        "post_rounds": args.rounds,
        "profile_seconds": args.profile_seconds,
    }
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})

    started = time.perf_counter()
    logdir = Path(tempfile.mkdtemp(prefix="bench-fulfillment-"))
    alarm = sigterm_after(sizes.timeout)
    try:
        outcome = run(args, sizes, logdir)
    finally:
        alarm.cancel()
        if not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
    flat, report = outcome["flat"], outcome["report"]
    print_report(flat, report, sizes, args)
    flat.update(
        {
            "orders": sizes.orders,
            "clients": sizes.clients,
            "warmup_orders": sizes.warmup,
            "post_rounds": sizes.post_rounds,
            "post_per_client": sizes.post_per_client,
            "poll_s": args.poll or 0,
            "celery_concurrency": args.celery_concurrency,
            "celery_threads": int(args.celery_pool == "threads"),
            "mock_fetch_wait_ms": args.mock_fetch_wait_ms,
            "connections_reused": int(args.connections == "reuse"),
            "quick": int(args.quick),
            "machine": machine(),
            "when": now_iso(),
            "duration_s": round(time.perf_counter() - started, 1),
        }
    )
    flat = {k: round(v, 3) if isinstance(v, float) else v for k, v in flat.items()}
    path = write_results("fulfillment", flat, args.output)
    print(
        f"\nwrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"
        f" in {flat['duration_s']} s"
    )


if __name__ == "__main__":
    main()

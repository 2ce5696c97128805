"""Why the hot statements bypass Django's cursor (`platform_core/storage/pg.py`) and why
whole rows bypass bulk_create (`platform_core/storage/row_writer.py`), on PostgreSQL.

    .venv/bin/python bench/statements.py            # default size, about a minute
    .venv/bin/python bench/statements.py --quick    # smoke size for CI, a few seconds

It (re)creates the database named by --database-url (default $BENCH_DATABASE_URL, else
postgres://postgres@127.0.0.1:5432/bench_statements; the name must start with "bench_"),
migrates it, and runs each workload with three contenders on one process's connections:

  django      Django's cursor as configured by default: parameters bound on the client
              (psycopg's ClientCursor), the statement rendered into SQL text per call.
  django-ssb  Django's cursor with OPTIONS server_side_binding=True and prepare_threshold=1:
              parameters sent apart, the statement prepared by psycopg on its second run.
  pg          storage.pg: a psycopg cursor over Django's own connection, prepared once.

Workloads (a transaction runs 20 statements, so the commit does not hide their cost):
  claim     the inbox claim of one message id (INSERT ... unnest ... ON CONFLICT RETURNING)
  lookup    an Idempotency-Key lookup (SELECT of four columns by owner and key)
  upsert    500 saga-instance rows written whole: RowWriter.upsert (pg) against
            bulk_create(update_conflicts=True) from the same dicts (django, django-ssb)

Each workload's contenders run once per round, rotating who goes first; the table shows
medians and each contender's ratio to `django` (the median of per-round ratios). It prints
the table and writes bench/results/statements.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(Path(__file__).resolve().parent), str(ROOT / "platform"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _common import (  # noqa: E402
    format_number,
    interleaved,
    log,
    machine,
    now_iso,
    paired_ratio,
    recreate_database,
    render_table,
    setup_django,
    throughput,
    write_results,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_statements"
CONTENDERS = ("django", "django-ssb", "pg")
PER_TRANSACTION = 20
CLAIM = (
    "INSERT INTO inbox (consumer, message_id, processed_at)"
    " SELECT %s, message_id, %s FROM unnest(%s::text[]) AS message_id"
    " ON CONFLICT (consumer, message_id) DO NOTHING RETURNING message_id"
)
LOOKUP = (
    "SELECT fingerprint, status_code, body, location FROM idempotency_keys"
    " WHERE owner = %s AND key = %s AND created_at >= %s"
)


@dataclass(frozen=True)
class Sizes:
    seconds: float  # each contender's share of a round
    rounds: int
    rows: int  # rows an upsert writes


QUICK = Sizes(seconds=0.3, rounds=2, rows=100)
DEFAULT = Sizes(seconds=1.5, rounds=5, rows=500)


def add_server_side_binding_alias() -> None:
    from django.db import connections

    default = connections.settings["default"]
    options = {**default.get("OPTIONS", {}), "server_side_binding": True, "prepare_threshold": 1}
    connections.settings["django-ssb"] = {**default, "OPTIONS": options}


def statement_workloads() -> dict[str, dict[str, Callable[[], int]]]:
    from django.db import connections, transaction

    from platform_core.models import IdempotencyRecord
    from platform_core.storage import pg

    ids = (str(n) for n in itertools.count())
    since = datetime.now(UTC) - timedelta(days=1)
    IdempotencyRecord.objects.bulk_create(
        IdempotencyRecord(owner="7", key=f"k-{n}", fingerprint="f", status_code=202)
        for n in range(1000)
    )

    def on_django(alias: str, sql: str, params: Callable[[], list[object]]) -> Callable[[], int]:
        def run() -> int:
            with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
                for _ in range(PER_TRANSACTION):
                    cursor.execute(sql, params())
                    cursor.fetchall()
            return PER_TRANSACTION

        return run

    def on_pg(sql: str, params: Callable[[], list[object]]) -> Callable[[], int]:
        def run() -> int:
            with transaction.atomic():
                for _ in range(PER_TRANSACTION):
                    pg.fetchall(sql, params())
            return PER_TRANSACTION

        return run

    def claim() -> list[object]:
        return ["bench", datetime.now(UTC), [next(ids)]]

    def lookup() -> list[object]:
        return ["7", f"k-{next(ids)[-3:]}", since]

    return {
        name: {
            "django": on_django("default", sql, params),
            "django-ssb": on_django("django-ssb", sql, params),
            "pg": on_pg(sql, params),
        }
        for name, sql, params in (("claim", CLAIM, claim), ("lookup", LOOKUP, lookup))
    }


def upsert_workload(rows: int) -> dict[str, Callable[[], int]]:
    from django.db import transaction

    from platform_core.models import SagaInstance
    from platform_core.storage.row_writer import RowWriter

    now = datetime.now(UTC)
    batch = [
        {
            "id": uuid.uuid4(),
            "saga": "bench",
            "key": f"order-{n}",
            "status": "running",
            "step": 2,
            "data": {"order_id": f"order-{n}", "total": "12.50", "lines": [["MUG", 2]]},
            "deadline_at": now,
            "resends": 0,
            "step_started_at": now,
            "stuck_since": None,
            "reason": "",
            "created_at": now,
            "updated_at": now,
        }
        for n in range(rows)
    ]
    names = [f.attname for f in SagaInstance._meta.concrete_fields]
    batch = [{name: row.get(name) for name in names} for row in batch]
    changing = [name for name in names if name != "id"]
    writer = RowWriter(SagaInstance)

    def on_django(alias: str) -> Callable[[], int]:
        def run() -> int:
            with transaction.atomic(using=alias):
                SagaInstance.objects.using(alias).bulk_create(
                    [SagaInstance(**row) for row in batch],
                    update_conflicts=True,
                    unique_fields=["id"],
                    update_fields=changing,
                )
            return len(batch)

        return run

    def on_row_writer() -> int:
        with transaction.atomic():
            writer.upsert(batch)
        return len(batch)

    return {
        "django": on_django("default"),
        "django-ssb": on_django("django-ssb"),
        "pg": on_row_writer,
    }


def run(sizes: Sizes) -> dict[str, float]:
    workloads = {**statement_workloads(), "upsert": upsert_workload(sizes.rows)}
    flat: dict[str, float] = {}
    for name, contenders in workloads.items():
        log(f"{name}: {', '.join(contenders)}")
        per_round = interleaved(
            {c: (lambda op=op: throughput(op, sizes.seconds)) for c, op in contenders.items()},
            sizes.rounds,
        )
        for contender, values in per_round.items():
            key = f"{name}_{contender.replace('-', '_')}"
            flat[f"{key}_per_s"] = sorted(values)[len(values) // 2]
            flat[f"{key}_vs_django"] = paired_ratio(values, per_round["django"])
    return flat


def report(flat: dict[str, float], sizes: Sizes) -> None:
    units = {"claim": "statements/s", "lookup": "statements/s", "upsert": "rows/s"}
    rows = []
    for name, unit in units.items():
        label = f"upsert {sizes.rows} rows" if name == "upsert" else name
        for contender in CONTENDERS:
            key = f"{name}_{contender.replace('-', '_')}"
            rows.append(
                [
                    label,
                    contender,
                    unit,
                    format_number(flat[f"{key}_per_s"]),
                    format_number(flat[f"{key}_vs_django"]),
                ]
            )
    print(render_table(["workload", "contender", "unit", "rate", "vs django"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--quick", action="store_true", help="smoke size (CI)")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else DEFAULT
    recreate_database(args.database_url)
    setup_django(args.database_url)
    add_server_side_binding_alias()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    flat = run(sizes)
    print(f"machine: {machine()}  when: {now_iso()}  size: {'quick' if args.quick else 'default'}")
    report(flat, sizes)
    if not args.quick or args.output:
        path = write_results(
            "statements", {**flat, "machine": machine(), "when": now_iso()}, args.output
        )
        log(f"results: {path}")


if __name__ == "__main__":
    main()

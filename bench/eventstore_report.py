"""What eventstore.py prints and writes: the table's rows with their targets (ours over raw),
medians and per-round ratios as flat metrics, and the machine with its PostgreSQL."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import psycopg
from _common import format_number, machine, median, now_iso, paired_ratio, render_table
from eventstore_workloads import Results, Sizes


@dataclass(frozen=True)
class Row:
    label: str
    workload: str
    ours: str | None
    library: str | None
    unit: str  # "events/s" or "ms"
    target: float | None = None  # ours/raw: at least (events/s) or at most (ms)
    raw: str = "raw"


ROWS = [
    Row(
        "append 1 event/tx, new stream each",
        "append_1_new_stream",
        "ours",
        "library",
        "events/s",
        0.9,
    ),
    Row(
        "  plain INSERT into event_store, no guard",
        "append_1_new_stream",
        "sql_insert",
        None,
        "events/s",
    ),
    Row(
        "  our SQL on a plain psycopg connection",
        "append_1_new_stream",
        "sql_guarded",
        None,
        "events/s",
    ),
    Row(
        "append 1 event/tx, same stream", "append_1_same_stream", "ours", "library", "events/s", 0.9
    ),
    Row(
        "  same, ours in transaction.atomic()",
        "append_1_same_stream",
        "ours_atomic",
        None,
        "events/s",
    ),
    Row(
        "  same, domain: Repository.save / Application.save",
        "append_1_same_stream",
        "ours_repository",
        "library_application",
        "events/s",
    ),
    Row("append 10 events/tx", "append_10_per_tx", "ours", "library", "events/s", 0.8),
    Row("append 100 events/tx", "append_100_per_tx", "ours", "library", "events/s", 0.8),
    Row(
        "  raw as multi-row VALUES, not unnest",
        "append_100_per_tx",
        None,
        None,
        "events/s",
        raw="raw_values",
    ),
    Row("4 writer processes, 1 event/tx", "writers_4", "ours", "library", "events/s"),
    Row("16 writer processes, 1 event/tx", "writers_16", "ours", "library", "events/s", 0.8),
    Row("load 1,000-event aggregate, full replay", "load_1000", "ours", "library", "ms", 1.5),
    Row("  ours from snapshot (SNAPSHOT_EVERY=20)", "load_1000", "ours_snapshot", None, "ms", 1.5),
    Row("  ours read_stream only, no decode/apply", "load_1000", "ours_read_stream", None, "ms"),
    Row("read global log in batches of 1,000", "read_log", "ours", "library", "events/s", 0.8),
    Row(
        "  our query, binary rows left as tuples",
        "read_log",
        "sql_fetch",
        None,
        "events/s",
    ),
]


def postgres_version(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]


def metric(workload: str, impl: str, unit: str) -> str:
    return f"{workload}_{impl}_{'ms' if unit == 'ms' else 'events_per_s'}"


def report(results: Results, sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for workload, per_impl in results.items():
        unit = "ms" if workload.startswith("load") else "events/s"
        for impl, values in per_impl.items():
            flat[metric(workload, impl, unit)] = round(median(values), 3)
            if impl != "raw":
                flat[f"{workload}_{impl}_raw_ratio"] = round(
                    paired_ratio(values, per_impl["raw"]), 3
                )
    rows, met, total = [], 0, 0
    for row in ROWS:
        if row.workload not in results:
            continue
        data = results[row.workload]

        def value(impl: str | None, data: dict[str, list[float]] = data) -> float | None:
            return median(data[impl]) if impl else None

        def ratio(impl: str | None, workload: str = row.workload) -> str:
            return f"{flat[f'{workload}_{impl}_raw_ratio']:.2f}x" if impl else "-"

        verdict, target = "", "-"
        if row.target is not None and row.ours:
            ours_ratio = flat[f"{row.workload}_{row.ours}_raw_ratio"]
            ok = ours_ratio >= row.target if row.unit != "ms" else ours_ratio <= row.target
            target = f"{'>=' if row.unit != 'ms' else '<='} {row.target}x"
            verdict = "met" if ok else "MISSED"
            met, total = met + ok, total + 1
            flat[f"{row.workload}_{row.ours}_target_met"] = int(ok)
        rows.append(
            [
                row.label,
                row.unit,
                format_number(value(row.ours)),
                format_number(value(row.library)),
                format_number(value(row.raw)),
                ratio(row.ours),
                ratio(row.library),
                target,
                verdict,
            ]
        )
    headers = [
        "workload",
        "unit",
        "ours",
        "library",
        "raw",
        "ours/raw",
        "lib/raw",
        "target",
        "ours",
    ]
    print(render_table(headers, rows))
    print(
        f"\n{met} of {total} targets met; medians of {sizes.rounds} interleaved rounds"
        f" ({sizes.writer_rounds} for the writer processes)."
    )
    flat.update(
        {
            "targets_met": met,
            "targets_total": total,
            "rounds": sizes.rounds,
            "writer_rounds": sizes.writer_rounds,
            "quick": int(args.quick),
            "read_log_events": sizes.log_events,
            "read_log_batch": sizes.log_batch,
            "load_aggregate_events": sizes.aggregate_events,
            "machine": f"{machine()}, {postgres_version(args.database_url)}",
            "when": now_iso(),
        }
    )
    return flat

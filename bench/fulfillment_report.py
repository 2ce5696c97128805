"""What fulfillment.py prints: the table of ours beside the control against the targets,
where an order's time goes stage by stage, the CPU each process used, and the py-spy
summaries."""

from __future__ import annotations

import argparse
import os
from typing import Any

from _common import format_number, percentile, render_table, score_targets, verdict
from fulfillment_load import Sizes

TARGETS = {  # metric: (comparison, value, label); ratios are to controls of the same run
    "confirmed_per_control_post": (">=", 0.4, ">= 0.4x (stretch 0.5x)"),
    "confirmed_per_floor": (">=", 0.7, ">= 0.7x"),
    "open_post_to_confirmed_p50_ms": ("<=", 150, "<= 150 ms"),
    "open_post_to_confirmed_p99_ms": ("<=", 500, "<= 500 ms"),
    "pg_commits_per_order": ("<=", 10, "<= 10"),
    "pg_inserted_per_order": ("<=", 20, "<= 20"),
    "post_throughput_ratio": (">=", 0.66, ">= 0.66x"),
    "post_p99_ratio": ("<=", 1.3, "<= 1.3x"),
}


def print_report(
    flat: dict[str, Any], report: dict[str, Any], sizes: Sizes, args: argparse.Namespace
) -> None:
    m = sizes.clients
    f = flat.get
    n = format_number
    rows = [
        [
            f"orders confirmed, {m} clients closed loop (sustained)",
            "/s",
            n(f("confirmed_per_s")),
            f"POST {n(f('control_post_per_s'))}",
            n(f("confirmed_per_control_post")),
            "confirmed_per_control_post",
        ],
        [
            "  the same against the transport floor",
            "/s",
            n(f("confirmed_per_s")),
            f"floor {n(f('floor_per_s'))}",
            n(f("confirmed_per_floor")),
            "confirmed_per_floor",
        ],
        [
            f"POST -> confirmed p50, open loop at {n(f('open_rate_per_s'))}/s (half)",
            "ms",
            n(f("open_post_to_confirmed_p50_ms")),
            "-",
            "-",
            "open_post_to_confirmed_p50_ms",
        ],
        [
            "POST -> confirmed p99, open loop",
            "ms",
            n(f("open_post_to_confirmed_p99_ms")),
            "-",
            "-",
            "open_post_to_confirmed_p99_ms",
        ],
        [
            "PostgreSQL transactions per confirmed order",
            "",
            n(f("pg_commits_per_order")),
            "-",
            "-",
            "pg_commits_per_order",
        ],
        [
            "  of which wrote (took a transaction id)",
            "",
            n(f("pg_writing_transactions_per_order")),
            "-",
            "-",
            None,
        ],
        [
            "rows inserted per confirmed order",
            "",
            n(f("pg_inserted_per_order")),
            "-",
            "-",
            "pg_inserted_per_order",
        ],
        [
            "messages per order: Celery tasks / Kafka messages",
            "",
            f"{n(f('celery_tasks_per_order'))} / {n(f('kafka_messages_per_order'))}",
            f"floor {n(f('floor_celery_tasks_per_order'))} / "
            f"{n(f('floor_kafka_messages_per_order'))}",
            "-",
            None,
        ],
        [
            "CPU per order, all processes",
            "ms",
            n(f("cpu_ms_per_order")),
            f"floor {n(f('floor_cpu_ms_per_order'))}",
            "-",
            None,
        ],
        [
            f"POST -> confirmed p50 / p99, {m} clients closed loop",
            "ms",
            f"{n(f('post_to_confirmed_p50_ms'))} / {n(f('post_to_confirmed_p99_ms'))}",
            "-",
            "-",
            None,
        ],
        [
            "POST -> confirmed p50, 1 client alone",
            "ms",
            n(f("solo_post_to_confirmed_p50_ms")),
            f"floor {n(f('floor_p50_ms'))} ({m} clients)",
            "-",
            None,
        ],
        [
            f"POST throughput, {m} clients back to back",
            "req/s",
            n(f("post_per_s")),
            n(f("control_post_per_s")),
            n(f("post_throughput_ratio")),
            "post_throughput_ratio",
        ],
        [
            f"POST p50, {m} clients back to back",
            "ms",
            n(f("post_p50_ms")),
            n(f("control_post_p50_ms")),
            n(f("post_p50_ratio")),
            None,
        ],
        [
            f"POST p99, {m} clients back to back",
            "ms",
            n(f("post_p99_ms")),
            n(f("control_post_p99_ms")),
            n(f("post_p99_ratio")),
            "post_p99_ratio",
        ],
        [
            "  same, without Idempotency-Key: throughput",
            "req/s",
            n(f("post_no_key_per_s")),
            n(f("control_post_per_s")),
            n(f("post_no_key_throughput_ratio")),
            None,
        ],
        [
            "  same, without Idempotency-Key: p99",
            "ms",
            n(f("post_no_key_p99_ms")),
            n(f("control_post_p99_ms")),
            n(f("post_no_key_p99_ratio")),
            None,
        ],
    ]
    table = []
    for label, unit, ours, control, ratio, metric in rows:
        target = TARGETS[metric][2] if metric else ""
        table.append(
            [
                label,
                unit,
                ours,
                control,
                ratio,
                target,
                verdict(flat, metric, TARGETS) if metric else "",
            ]
        )
    print()
    print(render_table(["metric", "unit", "ours", "control", "ours/control", "target", ""], table))
    met, total = score_targets(flat, TARGETS)
    print(
        f"\n{met} of {total} targets met. Saga phase: {f('orders_confirmed')} orders after "
        f"{sizes.warmup} warm-up, mean {f('in_flight_mean'):.1f} in flight; POST phase: "
        f"median of {sizes.post_rounds} interleaved rounds of {m}x{sizes.post_per_client}. "
        f"Saga errors: {report.get('errors') or 'none'}; POST phase non-2xx: ours "
        f"{f('post_failures')}, without key {f('post_no_key_failures')}, control "
        f"{f('control_post_failures')}."
    )
    print(
        "Controls of this run: the bare DRF POST (one row inserted, the same server, auth"
        " and middleware) and the transport floor (the saga's hops with empty handlers: a"
        " Kafka message in, per step a Celery task whose handler answers on Kafka, on the"
        " same brokers, pool and client settings). PostgreSQL transactions leave out the"
        f" bench's own ({f('pg_bench_transactions_per_order'):.1f} an order). The open loop"
        " times each order from when it was due, so falling behind shows."
    )
    if report.get("inserted"):
        top = [(table, per) for table, per in report["inserted"] if per >= 0.05]
        print(
            "Rows inserted per confirmed order, by table: "
            + ", ".join(f"{table} {per:.1f}" for table, per in top)
            + "."
        )
    if report.get("floor_cpu"):
        print(
            "Transport floor CPU per order: "
            + ", ".join(
                f"{role} {ms:.1f} ms"
                for role, ms in sorted(report["floor_cpu"].items(), key=lambda kv: -kv[1])
            )
            + "."
        )

    stages = report.get("stages") or []
    solo = report.get("solo_stages") or {}
    if stages:
        print(
            f"\nWhere an order's time goes (ms per order, from the outbox, saga_steps and the"
            f" bench's clock): {len(stages[0][1])} orders at {m} clients, and"
            f" {len(next(iter(solo.values()), []))} placed by 1 client alone:"
        )
        srows = [
            [
                name,
                format_number(percentile(solo[name], 50)) if name in solo else "-",
                format_number(percentile(v, 50)),
                format_number(percentile(v, 90)),
                format_number(percentile(v, 99)),
            ]
            for name, v in stages
        ]
        summed = [sum(vs) for vs in zip(*(v for _, v in stages), strict=True)]
        solo_total = [sum(vs) for vs in zip(*solo.values(), strict=True)] if solo else []
        srows.append(
            [
                "sum of the stages (= POST -> confirmed)",
                format_number(percentile(solo_total, 50)) if solo_total else "-",
                format_number(percentile(summed, 50)),
                format_number(percentile(summed, 90)),
                format_number(percentile(summed, 99)),
            ]
        )
        heads = ["stage", "p50, 1 client", f"p50, {m}", f"p90, {m}", f"p99, {m}"]
        print(render_table(heads, srows))

    if "cpu" in report:
        cpu, busy, capacity, elapsed, n = report["cpu"]
        print(
            f"\nCPU during the saga phase ({elapsed:.1f} s, {n} orders; machine "
            f"{100 * busy / capacity:.0f}% busy of {os.cpu_count()} cores, "
            f"ours {100 * sum(cpu.values()) / capacity:.0f}%):"
        )
        crow = [
            [role, format_number(sec), f"{100 * sec / elapsed:.0f}%", format_number(1000 * sec / n)]
            for role, sec in sorted(cpu.items(), key=lambda kv: -kv[1])
        ]
        crow.append(
            [
                "all of the above",
                format_number(sum(cpu.values())),
                f"{100 * sum(cpu.values()) / elapsed:.0f}%",
                format_number(1000 * sum(cpu.values()) / n),
            ]
        )
        print(render_table(["process", "CPU s", "of one core", "CPU ms/order"], crow))
        seen = ", ".join(f"{role} {count}" for role, count in report["backends"].most_common())
        print(f"PostgreSQL backends seen per client process (twice a second): {seen}.")
        cores = os.cpu_count() or 1
        print(
            f"At {flat['cpu_ms_per_order']:.1f} CPU ms an order, {cores} cores cap the "
            f"pipeline near {1000 * cores / flat['cpu_ms_per_order']:.0f} orders/s. "
            f"PostgreSQL per order: {f('pg_commits_per_order'):.1f} commits, "
            f"{f('pg_sessions_per_order'):.2f} new connections (one costs "
            f"{f('pg_connection_server_cpu_ms'):.1f} ms of server CPU and "
            f"{f('pg_connection_client_ms'):.1f} ms to open and close; "
            f"{f('cpu_ms_per_order_pg_connection_startups_est'):.1f} ms an order), "
            f"{f('pg_inserted_per_order'):.1f} rows inserted, "
            f"{f('pg_updated_per_order'):.1f} updated."
        )

    for role, (samples, cats, leaves) in report.get("py_spy", []):
        print(
            f"\npy-spy, {role} ({samples} samples at 100 Hz holding the GIL), by the innermost"
            " library frame:"
        )
        print(render_table(["where", "share"], [[k, f"{v:.0f}%"] for k, v in cats[:8]]))
        print(render_table(["top self frames", "share"], [[k, f"{v:.1f}%"] for k, v in leaves]))

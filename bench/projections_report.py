"""What projections.py prints: rebuild and catch-up rates beside the raw read, the push
latency and its parts, against the targets, with notes on the log and the load."""

from __future__ import annotations

from typing import Any

from _common import format_number, render_table, score_targets, verdict
from order_log import PRODUCTS
from projections_rebuild import PROJECTIONS
from projections_sizes import Sizes

TARGETS = {  # metric: (comparison, value, label)
    "rebuild_order_summary_raw_ratio": (">=", 0.3, ">= 0.3x"),
    "rebuild_product_stock_raw_ratio": (">=", 0.3, ">= 0.3x"),
    "catch_up_raw_ratio": (">=", 0.3, ">= 0.3x"),
    "push_latency_p99_ms": ("<=", 250, "<= 250 ms"),
}


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
        rows += [
            (
                "live projector from 0, both",
                "events/s",
                "catch_up_events_per_s",
                "catch_up_raw_ratio",
            ),
            (
                "  same, a staff board listening",
                "events/s",
                "catch_up_listened_events_per_s",
                "catch_up_listened_raw_ratio",
            ),
        ]
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
                verdict(flat, target, TARGETS) if target else "",
            ]
        )
    print()
    print(render_table(["workload", "unit", "ours", "ours/raw", "target", ""], table))
    met, total = score_targets(flat, TARGETS)
    notes = [f"\n{met} of {total} targets met."]
    if "log_events" in flat:
        notes.append(
            f"Log: {f('log_events'):,} events of {f('log_orders'):,} orders and {PRODUCTS}"
            f" products, written at {f('log_write_events_per_s'):,.0f} events/s. Rebuilds:"
            f" medians of {sizes.rounds} interleaved rounds, ratios the medians of per-round"
            " ratios (the live projector's too: a fresh runner from checkpoint 0, its pushes"
            " through Redis pub/sub; with nobody listening nothing is encoded or sent, the"
            f" staff board got {f('catch_up_listened_frames', 0):,} frames). The machine was"
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

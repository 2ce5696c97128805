"""The table messaging.py prints: ours beside the bare client for each workload, against
the targets."""

from __future__ import annotations

from _common import format_number, render_table, score_targets, verdict
from messaging_workloads import Sizes

TARGETS = {  # metric: (comparison, value)
    "relay_msgs_per_s": (">=", 20_000),
    "commit_to_ack_p99_ms": ("<=", 100),
    "consumer_inbox_msgs_per_s": (">=", 5_000),
    "consumer_inbox_write_msgs_per_s": (">=", 5_000),
}


def report(flat: dict[str, float], sizes: Sizes) -> None:
    n, c = f"{sizes.relay_rows:,}", f"{sizes.consumer_messages:,}"
    lines = [
        (
            f"relay {n} rows (batch {sizes.relay_batch})",
            "msgs/s",
            "relay_msgs_per_s",
            "bare_producer_msgs_per_s",
            "relay_bare_ratio",
        ),
        (
            f"commit-to-ack p50 at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_p50_ms",
            "bare_produce_to_ack_p50_ms",
            None,
        ),
        (
            f"commit-to-ack p99 at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_p99_ms",
            "bare_produce_to_ack_p99_ms",
            None,
        ),
        (
            f"commit-to-ack max at {sizes.latency_rate:.0f}/s",
            "ms",
            "commit_to_ack_max_ms",
            "bare_produce_to_ack_max_ms",
            None,
        ),
        (
            f"consume {c}, inbox claim only",
            "msgs/s",
            "consumer_inbox_msgs_per_s",
            "bare_consumer_msgs_per_s",
            "consumer_inbox_bare_ratio",
        ),
        (
            f"consume {c}, inbox + 1 INSERT each",
            "msgs/s",
            "consumer_inbox_write_msgs_per_s",
            "bare_consumer_msgs_per_s",
            "consumer_inbox_write_bare_ratio",
        ),
    ]
    rows = []
    for label, unit, ours, bare, ratio in lines:
        if ours not in flat:
            continue
        target = TARGETS.get(ours)
        rows.append(
            [
                label,
                unit,
                format_number(flat[ours]),
                format_number(flat.get(bare)),
                format_number(flat[ratio]) if ratio else "-",
                f"{target[0]} {target[1]:,}" if target else "",
                verdict(flat, ours, TARGETS) if target else "",
            ]
        )
    print(render_table(["workload", "unit", "ours", "bare", "ours/bare", "target", "ours"], rows))
    met, total = score_targets(flat, TARGETS)
    print(f"\n{met} of {total} targets met; medians of {sizes.rounds} interleaved rounds.")

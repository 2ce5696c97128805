"""Scale-out, proven for correctness: the deployment (tests/e2e/deployment.py) with two
copies of every process but the web — two consumers in each consumer group, two Celery
workers, two relays (one leads, one waits), two projectors, two saga-timer processes —
under the chaos traffic (chaos_support.Traffic), the leading relay killed halfway.

Then every acknowledged order must have reached a final state, `verify_consistency` must
find nothing, no effect may show twice in the stores the contexts keep (captures at the
fake gateway, shipments, stock held), and the logs and heartbeats must show that both
copies did work: each consumer had partitions and handled messages from them, each worker
ran tasks, each relay led, each projector and saga-timer process went round its loop
without failing. `make test-scale` runs it (SCALE_ORDERS=40 orders; about a minute).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_core.messaging.relay import LEADER_LOCK_KEY
from tests.e2e.chaos_support import confirm_one, figures, lost, traffic
from tests.e2e.deployment import CONSUMER_GROUPS, SKU, STOCK, Deployment, deployment

pytestmark = [pytest.mark.scale, pytest.mark.postgres, pytest.mark.rabbitmq]

ORDERS = int(os.environ.get("SCALE_ORDERS", "40"))
COPIES = ("", "-2")
FINAL = ("confirmed", "shipped", "delivered", "cancelled")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(
        tmp_path_factory.mktemp("scale"),
        copies=len(COPIES),
        SAGA_STEP_SECONDS="3",
        SAGA_GIVE_UP_SECONDS="8",
        LOOP_STALL_SECONDS="10",
    ) as platform:
        yield platform


def log_messages(log: Path, since: int = 0) -> list[str]:
    """The messages a process logged from byte `since` of its log (JSON lines or text)."""
    with log.open("rb") as file:
        file.seek(since)
        lines = file.read().decode(errors="replace").splitlines()
    return [json.loads(line)["message"] if line.startswith("{") else line for line in lines]


def assignment(running: Deployment, role: str, group: str) -> str:
    """The partitions the consumer `role` holds now, by its last rebalance line."""
    held = ""
    for message in log_messages(running.procs[role].log):
        if message.startswith(f"consumer {group} assigned "):
            held = message.removeprefix(f"consumer {group} assigned ")
        elif message.startswith(f"consumer {group} revoked "):
            held = ""
    return "" if held == "nothing" else held


def handled(running: Deployment, role: str, group: str, since: int) -> Counter[str]:
    """Messages the consumer `role` handled since byte `since` of its log, by partition."""
    pattern = re.compile(rf"consumer {re.escape(group)} handled (\d+) from (.+)")
    found: Counter[str] = Counter()
    for message in log_messages(running.procs[role].log, since):
        if match := pattern.fullmatch(message):
            for partition in match[2].split(", "):
                found[partition] += int(match[1])
    return found


def tasks_run(running: Deployment, role: str, since: int) -> int:
    return sum(" succeeded in " in m for m in log_messages(running.procs[role].log, since))


def relay_leader(running: Deployment) -> str:
    """The role of the relay holding the leader's advisory lock ("" if none does)."""
    rows = running.query(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
        [LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF],
    )
    return str(rows[0][0]).removeprefix(running.fleet.app_prefix) if rows else ""


def consumers() -> list[tuple[str, str]]:
    return [(f"consumer-{group}{copy}", group) for group in CONSUMER_GROUPS for copy in COPIES]


def test_two_of_each_process_share_the_work_without_duplicate_effects_or_stalls(
    running: Deployment,
) -> None:
    running.wait_until(
        lambda: all(assignment(running, role, group) for role, group in consumers()),
        "both consumers of each group assigned partitions",
    )
    leader = relay_leader(running)
    assert leader in ("relay", "relay-2"), f"no relay leads: {leader!r}"
    standby = "relay-2" if leader == "relay" else "relay"
    began = {role: proc.log.stat().st_size for role, proc in running.procs.items()}

    with traffic(running, seed=17) as flowing:
        flowing.wait_for_orders(ORDERS // 2)
        running.wait_until(
            lambda: bool(running.query("SELECT 1 FROM outbox WHERE published_at IS NULL")),
            "outbox rows waiting to be relayed",
        )
        running.kill(leader)
        running.wait_until(lambda: relay_leader(running) == standby, f"{standby} leading")
        running.start(leader)  # back, as the standby now
        recovery = confirm_one(running)
        flowing.wait_for_orders(ORDERS - ORDERS // 2)
        # Orders go on until each copy has worked (partitions are chosen by a hash of ids).
        running.wait_until(
            lambda: all(handled(running, role, group, began[role]) for role, group in consumers()),
            "every consumer handling messages",
        )
        running.wait_until(
            lambda: all(
                tasks_run(running, f"worker{copy}", began[f"worker{copy}"]) for copy in COPIES
            ),
            "both workers running tasks",
        )
    report = running.settle()

    spread = {
        role: f"{assignment(running, role, group)}: "
        f"{sum(handled(running, role, group, began[role]).values())}"
        for role, group in consumers()
    }
    workers = {f"worker{c}": tasks_run(running, f"worker{c}", began[f"worker{c}"]) for c in COPIES}
    proof = f"relay {leader} killed, {standby} took over; consumers {spread}; workers {workers}"
    print("\n" + figures("scale-out", proof, flowing, recovery, report))

    assert lost(running, flowing.acked) == 0, "an order the API acknowledged is gone"
    statuses = running.orders_by_status()
    assert set(statuses) <= set(FINAL), f"orders not in a final state: {statuses}"
    assert relay_leader(running) == standby, "the restarted relay took the lead back"
    assert_no_duplicate_effects(running)
    assert_stock_held_by_the_live_orders(running)
    assert_every_copy_looped(running, "projector", "saga-timers")


def assert_every_copy_looped(running: Deployment, *loops: str) -> None:
    """Each copy of each loop has a heartbeat of its own and is not failing."""
    for loop in loops:
        pids = {running.procs[f"{loop}{copy}"].pid for copy in COPIES}
        beating = {
            int(instance.rsplit(":", 1)[1])
            for (instance,) in running.query(
                "SELECT instance FROM loop_heartbeats WHERE loop = %s AND failing_since IS NULL",
                [loop],
            )
        }
        assert pids <= beating, f"{loop}: copies {pids}, healthy heartbeats {beating}"


def assert_no_duplicate_effects(running: Deployment) -> None:
    """One capture for each order that is or was fulfilled, none twice; one shipment for
    each; one reservation of stock for each."""
    captures = running.query(
        "SELECT o.id::text, o.status, count(a.id) FROM read_order_summary o"
        " LEFT JOIN payments_gateway_attempts a ON a.operation = 'charge'"
        " AND a.outcome = 'succeeded' AND a.idempotency_key LIKE '%%' || o.id::text || '%%'"
        " GROUP BY o.id, o.status"
    )
    fulfilled = ("confirmed", "shipped", "delivered")
    assert [c for c in captures if c[2] > 1] == [], "orders charged twice"
    assert [c for c in captures if c[1] in fulfilled and c[2] != 1] == [], "orders not charged"
    for event_type in ("shipping.ShipmentCreated", "inventory.StockReserved"):
        twice = running.query(
            "SELECT data->>'order_id', count(*) FROM event_store WHERE event_type = %s"
            " GROUP BY 1 HAVING count(*) > 1",
            [event_type],
        )
        assert twice == [], f"{event_type} twice for an order"
    [(unshipped,)] = running.query(
        "SELECT count(*) FROM read_order_summary WHERE status IN ('confirmed', 'shipped',"
        " 'delivered') AND NOT EXISTS (SELECT 1 FROM event_store e WHERE e.event_type ="
        " 'shipping.ShipmentCreated' AND e.data->>'order_id' = read_order_summary.id::text)"
    )
    assert unshipped == 0, "fulfilled orders without a shipment"


def assert_stock_held_by_the_live_orders(running: Deployment) -> None:
    """The product holds what its confirmed orders hold, and has given out what its
    shipped ones took (the inventory consumers commit a dispatch after the order's own
    consumers mark it shipped, so this is waited for)."""

    def quantities(*statuses: str) -> int:
        [(total,)] = running.query(
            "SELECT coalesce(sum((item->>'quantity')::int), 0) FROM read_order_summary,"
            " jsonb_array_elements(items) AS item WHERE status = ANY(%s) AND item->>'sku' = %s",
            [list(statuses), SKU],
        )
        return int(total)

    def expected() -> tuple[int, int]:
        return STOCK - quantities("shipped", "delivered"), quantities("confirmed")

    def stock() -> tuple[int, int]:
        [(on_hand, reserved)] = running.query(
            "SELECT on_hand, reserved FROM read_product_stock WHERE sku = %s", [SKU]
        )
        return int(on_hand), int(reserved)

    running.wait_until(lambda: stock() == expected(), "the product's stock to match its orders")

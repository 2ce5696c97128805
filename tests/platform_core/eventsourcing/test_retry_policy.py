"""The platform's shared backoff: full jitter, each policy its own random source."""

from __future__ import annotations

import multiprocessing
from random import Random

from platform_core.eventsourcing.retry import RetryPolicy

# Made at import, as the platform's policies are, before any pool forks its children.
POLICY = RetryPolicy(max_attempts=10, base_delay=1, max_delay=8)


def _draws(policy: RetryPolicy, out: multiprocessing.Queue) -> None:
    out.put([policy.delay(attempt) for attempt in range(1, 6)])


def test_the_children_of_a_forked_pool_draw_waits_of_their_own() -> None:
    """Else two commands that conflict in two prefork children retry in step forever."""
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    children = [fork.Process(target=_draws, args=(POLICY, out)) for _ in range(2)]
    for child in children:
        child.start()
    first, second = out.get(timeout=30), out.get(timeout=30)
    for child in children:
        child.join(timeout=30)
    assert first != second


def test_a_seeded_source_replays_the_same_waits() -> None:
    def waits() -> list[float]:
        policy = RetryPolicy(base_delay=0.5, max_delay=4, jitter=Random(3))
        return [policy.delay(attempt) for attempt in range(1, 8)]

    first = waits()
    assert first == waits()
    assert all(0 <= wait <= min(4, 0.5 * 2 ** (n - 1)) for n, wait in enumerate(first, 1))

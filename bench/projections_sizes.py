"""The sizes of projections.py's two parts, at the CI smoke size and the default: the log
the rebuild part reads, and the clients and orders of the push part."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    events: int  # log size (whole transactions of 100 orders, so about this)
    rounds: int
    clients: int  # websocket clients
    order_rate: float  # orders/s placed in the push phase
    push_seconds: float
    timeout: float  # the whole run


QUICK = Sizes(events=10_000, rounds=3, clients=20, order_rate=2, push_seconds=10, timeout=240)
DEFAULT = Sizes(events=100_000, rounds=5, clients=100, order_rate=2, push_seconds=45, timeout=900)

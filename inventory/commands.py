"""Commands the inventory context accepts: its published language."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID

from inventory.events import ReservationLine


@dataclass(frozen=True, kw_only=True)
class RegisterProduct:
    sku: str
    name: str
    price: Decimal
    initial_stock: int
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class RestockProduct:
    sku: str
    quantity: int
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class ReserveStock:
    """Hold every line for the order, or none of them.

    Answered once per order: a repeat is a no-op, whatever its lines."""

    order_id: UUID
    lines: tuple[ReservationLine, ...]
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class ReleaseStock:
    """Give back what the order holds (compensation). The lines its reservation recorded
    are released whatever `skus` says; `skus` only adds products to look at."""

    order_id: UUID
    skus: tuple[str, ...] = ()
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class CommitStock:
    """The order was dispatched: what it holds leaves the stock on hand."""

    order_id: UUID
    skus: tuple[str, ...] = ()
    command_id: UUID = field(default_factory=uuid.uuid4)

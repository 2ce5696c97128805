"""Commands the inventory context accepts: its published language."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID


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

"""Commands the payments context accepts: its published language."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class ProcessPayment:
    """Charge the order once: a repeat is a no-op, whatever its amount or card.

    The card travels as `payment_ref`, the payment token vault's reference to the token
    the order left there, never as the token itself."""

    order_id: UUID
    amount: Decimal
    payment_ref: str
    command_id: UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, kw_only=True)
class RefundPayment:
    order_id: UUID
    command_id: UUID = field(default_factory=uuid.uuid4)

"""What the payments context publishes on Kafka, translated from its domain events."""

from __future__ import annotations

from typing import Any

from payments import events as payments_events
from payments.events import (
    PaymentCaptured,
    PaymentCapturedV1,
    PaymentDeclined,
    PaymentDeclinedV1,
    PaymentRefunded,
    PaymentRefundedV1,
    PaymentRefundFailed,
    PaymentRefundFailedV1,
    PaymentVoided,
    PaymentVoidedV1,
)

SOURCE = "/payments"
TOPIC = payments_events.TOPIC


def outbound(event: Any) -> list[Any]:
    match event:
        case PaymentCaptured():
            return [PaymentCapturedV1(order_id=event.order_id, amount=event.amount)]
        case PaymentDeclined():
            return [PaymentDeclinedV1(order_id=event.order_id, reason=event.reason)]
        case PaymentRefunded():
            return [PaymentRefundedV1(order_id=event.order_id, amount=event.amount)]
        case PaymentVoided():
            return [PaymentVoidedV1(order_id=event.order_id)]
        case PaymentRefundFailed():
            return [PaymentRefundFailedV1(order_id=event.order_id, reason=event.reason)]
    return []

"""One function per payments command: load, one aggregate call, save."""

from __future__ import annotations

from payments.commands import ProcessPayment, RefundPayment
from payments.domain.gateway import PaymentGateway
from payments.domain.payment import Payment
from platform_core.eventsourcing.repository import Repository


def process_payment(
    command: ProcessPayment, *, payments: Repository[Payment], gateway: PaymentGateway
) -> None:
    key = str(command.order_id)
    payment = payments.find(key) or payments.new(key)
    payment.charge(amount=command.amount, token=command.token, gateway=gateway)
    payments.save(payment)


def refund_payment(
    command: RefundPayment, *, payments: Repository[Payment], gateway: PaymentGateway
) -> None:
    key = str(command.order_id)
    payment = payments.find(key) or payments.new(key)
    payment.refund(gateway=gateway)
    payments.save(payment)

"""One function per payments command: load, one aggregate call, save."""

from __future__ import annotations

from payments.commands import ProcessPayment, RefundPayment
from payments.domain.gateway import PaymentGateway
from payments.domain.payment import Payment
from payments.domain.vault import CardVault
from platform_core.eventsourcing.repository import Repository


def process_payment(
    command: ProcessPayment,
    *,
    payments: Repository[Payment],
    gateway: PaymentGateway,
    vault: CardVault,
) -> None:
    """The card token leaves the vault for the charge, and is forgotten in the transaction
    that records the charge's outcome."""
    key = str(command.order_id)
    payment = payments.find(key) or payments.new(key)
    token = vault.redeem(command.payment_ref)
    payment.charge(amount=command.amount, token=token, gateway=gateway)
    payments.save(payment)
    vault.discard(command.payment_ref)


def refund_payment(
    command: RefundPayment, *, payments: Repository[Payment], gateway: PaymentGateway
) -> None:
    key = str(command.order_id)
    payment = payments.find(key) or payments.new(key)
    payment.refund(gateway=gateway)
    payments.save(payment)

"""The Payment aggregate and its handlers: one charge per order, captured or declined,
refunded once, with the fake gateway in memory."""

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from uuid import UUID

import pytest

import payments.events
from payments.commands import ProcessPayment, RefundPayment
from payments.domain.gateway import ChargeResult, GatewayTimeout, GatewayUnavailable
from payments.domain.payment import (
    CARD_GONE,
    InvalidPayment,
    Payment,
    PaymentStatus,
    charge_key,
)
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
from payments.gateway import InMemoryFakeGateway
from payments.handlers import process_payment, refund_payment
from payments.integration import outbound
from payments.vault import InMemoryTokenVault
from platform_core.eventsourcing.bus import CommandBus
from platform_core.eventsourcing.eventstore import AppendResult, NewEvent
from platform_core.eventsourcing.memory import InMemoryEventStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.serialization import EventCodec

AT = datetime(2025, 1, 2, tzinfo=UTC)
ORDER = UUID("00000000-0000-4000-8000-000000000001")
AMOUNT = Decimal("26.97")
CODEC = EventCodec(payments.events.EVENTS)

CAPTURED = PaymentCaptured(order_id=ORDER, amount=AMOUNT, charge_id="ch_1", captured_at=AT)
DECLINED = PaymentDeclined(order_id=ORDER, amount=AMOUNT, reason="declined", declined_at=AT)
REFUNDED = PaymentRefunded(
    order_id=ORDER, amount=AMOUNT, charge_id="ch_1", refund_id="re_1", refunded_at=AT
)


def given(*events: object) -> Payment:
    payment = Payment(str(ORDER), clock=lambda: AT)
    for event in events:
        payment.replay(event)
    return payment


class DatabaseFailsOnce(InMemoryEventStore):
    """A store whose first append fails, as a database that goes away after the gateway
    was called: the command is then delivered again."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def append(
        self, stream_id: str, stream_type: str, expected_version: int, events: Sequence[NewEvent]
    ) -> AppendResult:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the database went away")
        return super().append(stream_id, stream_type, expected_version, events)


class InterruptedGateway(InMemoryFakeGateway):
    """A gateway that runs `meanwhile` once, inside the next charge call: before the
    charge lands (`after=False`) or after (`after=True`), as another worker thread would
    while this one waits for the card network."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: Callable[[], None] | None = None
        self.after = False

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> ChargeResult:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None and not self.after:
            meanwhile()
        result = super().charge(idempotency_key=idempotency_key, amount=amount, token=token)
        if meanwhile is not None and self.after:
            meanwhile()
        return result


class Payments:
    """The payments handlers on an in-memory store, gateway and token vault, behind a bus."""

    def __init__(self, store: InMemoryEventStore | None = None) -> None:
        self.store = store or InMemoryEventStore()
        self.gateway = InterruptedGateway()
        self.now = AT
        self.vault = InMemoryTokenVault(ttl=timedelta(hours=1), clock=lambda: self.now)
        self.references: dict[str, str] = {}
        self.payments = Repository(Payment, store=self.store, codec=CODEC, clock=lambda: AT)
        self.bus = CommandBus(
            {
                ProcessPayment: partial(
                    process_payment, payments=self.payments, gateway=self.gateway, vault=self.vault
                ),
                RefundPayment: partial(
                    refund_payment, payments=self.payments, gateway=self.gateway
                ),
            },
            transaction=contextlib.nullcontext,
        )

    def pay(self, token: str, amount: Decimal = AMOUNT) -> None:
        """The charge command for the card `token`, which the order left in the vault
        (once: the same command each time it is delivered)."""
        if token not in self.references:
            self.references[token] = self.vault.deposit(order_id=ORDER, token=token)
        reference = self.references[token]
        self.bus.handle(ProcessPayment(order_id=ORDER, amount=amount, payment_ref=reference))

    def refund(self) -> None:
        self.bus.handle(RefundPayment(order_id=ORDER))

    def events(self) -> list[object]:
        return [
            CODEC.decode(e.event_type, e.schema_version, e.data)
            for e in self.store.read_stream(f"payment-{ORDER}")
        ]

    def status(self) -> PaymentStatus:
        return self.payments.get(str(ORDER)).state.status


def test_a_payment_with_a_good_card_is_captured():
    payments = Payments()

    payments.pay("tok_visa")

    [charge] = payments.gateway.attempts()
    assert payments.events() == [
        PaymentCaptured(
            order_id=ORDER,
            amount=AMOUNT,
            charge_id=charge.charge_id,
            captured_at=AT,
            card_last4="4242",
        )
    ]
    assert charge.idempotency_key == charge_key(ORDER)
    assert payments.status() is PaymentStatus.CAPTURED


def test_a_declined_card_is_recorded_as_a_declined_payment_not_raised():
    payments = Payments()

    payments.pay("tok_decline")

    assert payments.events() == [
        PaymentDeclined(
            order_id=ORDER, amount=AMOUNT, reason="Your card was declined.", declined_at=AT
        )
    ]
    assert payments.status() is PaymentStatus.DECLINED


def test_a_gateway_error_is_raised_recording_nothing_and_a_retry_captures():
    payments = Payments()

    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            payments.pay("tok_error")
        assert payments.events() == []
    payments.pay("tok_error")

    assert [type(event) for event in payments.events()] == [PaymentCaptured]
    assert payments.gateway.charges_captured(ORDER) == 1


def test_a_gateway_that_never_answers_leaves_the_payment_undecided():
    payments = Payments()

    for _ in range(3):
        with pytest.raises(GatewayTimeout):
            payments.pay("tok_timeout")

    assert payments.events() == []
    assert payments.gateway.charges_captured(ORDER) == 0


@pytest.mark.parametrize("history", [(CAPTURED,), (DECLINED,), (CAPTURED, REFUNDED)])
def test_charging_a_decided_payment_again_records_nothing_and_calls_no_gateway(history):
    payment = given(*history)
    gateway = InMemoryFakeGateway()

    payment.charge(amount=AMOUNT, token="tok_visa", gateway=gateway)

    assert payment.collect_pending() == []
    assert gateway.attempts() == []


def test_a_repeated_payment_command_charges_once():
    payments = Payments()

    payments.pay("tok_visa")
    payments.pay("tok_visa")
    payments.pay("tok_visa", amount=Decimal("1.00"))

    assert len(payments.events()) == 1
    assert payments.gateway.charges_captured(ORDER) == 1


def test_a_command_redelivered_after_its_charge_was_lost_does_not_charge_twice():
    payments = Payments(DatabaseFailsOnce())
    with pytest.raises(ConnectionError):
        payments.pay("tok_visa")

    payments.pay("tok_visa")

    [captured] = payments.events()
    assert [a.outcome for a in payments.gateway.attempts()] == ["succeeded", "replayed"]
    assert captured.charge_id == payments.gateway.attempts()[0].charge_id
    assert payments.gateway.charges_captured(ORDER) == 1


@pytest.mark.parametrize("amount", ["0", "-1.00", "7.505", "NaN", "Infinity"])
def test_an_amount_is_positive_in_whole_cents(amount):
    gateway = InMemoryFakeGateway()

    with pytest.raises(InvalidPayment, match="amount"):
        Payment(str(ORDER)).charge(amount=Decimal(amount), token="tok_visa", gateway=gateway)

    assert gateway.attempts() == []


@pytest.mark.parametrize("token", ["", "   "])
def test_a_payment_needs_a_token(token):
    with pytest.raises(InvalidPayment, match="token"):
        Payment(str(ORDER)).charge(amount=AMOUNT, token=token, gateway=InMemoryFakeGateway())


def test_a_captured_payment_is_refunded():
    payments = Payments()
    payments.pay("tok_visa")

    payments.refund()

    captured, refunded = payments.events()
    [refund] = [a for a in payments.gateway.attempts() if a.operation == "refund"]
    assert refunded == PaymentRefunded(
        order_id=ORDER,
        amount=AMOUNT,
        charge_id=captured.charge_id,
        refund_id=refund.refund_id,
        refunded_at=AT,
    )
    assert payments.status() is PaymentStatus.REFUNDED


def test_refunding_twice_refunds_once():
    payments = Payments()
    payments.pay("tok_visa")

    payments.refund()
    payments.refund()

    assert len(payments.events()) == 2
    assert payments.gateway.refunds_made(ORDER) == 1


def test_refunding_a_declined_payment_voids_it_without_touching_the_gateway():
    payment = given(DECLINED)
    gateway = InMemoryFakeGateway()

    payment.refund(gateway=gateway)

    assert payment.collect_pending() == [
        PaymentVoided(order_id=ORDER, reason="declined", voided_at=AT)
    ]
    assert gateway.refunds_made(ORDER) == 0


def test_a_refund_that_overtakes_its_charge_voids_the_payment_and_the_late_charge_does_nothing():
    payments = Payments()
    payments.refund()
    payments.pay("tok_visa")

    assert [type(e) for e in payments.events()] == [PaymentVoided]
    assert payments.gateway.charges_captured(ORDER) == 0
    assert outbound(payments.events()[0]) == [PaymentVoidedV1(order_id=ORDER)]


@pytest.mark.parametrize("charge_landed", [False, True], ids=["before", "after"])
def test_a_refund_racing_the_charge_gets_the_money_back_whichever_lands_first(charge_landed):
    """The charge's worker has loaded the payment and is waiting on the gateway when a
    refund (a cancel's compensation) runs on another worker. Whether the charge lands
    before the refund looks or after, the customer ends with no net charge."""
    payments = Payments()
    payments.gateway.meanwhile, payments.gateway.after = payments.refund, charge_landed

    payments.pay("tok_visa")  # its first save conflicts with the refund's; the bus reruns it

    assert [type(e) for e in payments.events()][-2:] == [PaymentCaptured, PaymentRefunded]
    assert payments.status() is PaymentStatus.REFUNDED
    assert payments.gateway.charges_captured(ORDER) == 1
    assert payments.gateway.refunds_made(ORDER) == 1


def test_a_refund_finds_a_charge_whose_worker_died_before_recording_it():
    payments = Payments(DatabaseFailsOnce())
    with pytest.raises(ConnectionError):
        payments.pay("tok_visa")  # charged at the gateway, then the worker lost its database

    payments.refund()
    payments.pay("tok_visa")  # the charge command, delivered again

    assert [type(e) for e in payments.events()] == [PaymentCaptured, PaymentRefunded]
    assert payments.gateway.charges_captured(ORDER) == 1
    assert payments.gateway.refunds_made(ORDER) == 1


def test_a_refund_the_gateway_refuses_is_recorded_and_published_and_can_be_tried_again():
    payments = Payments()
    payments.pay("tok_refund_fail")

    payments.refund()
    payments.refund()

    captured, failed, failed_again = payments.events()
    assert failed == PaymentRefundFailed(
        order_id=ORDER,
        charge_id=captured.charge_id,
        reason="The charge cannot be refunded.",
        failed_at=AT,
    )
    assert type(failed_again) is PaymentRefundFailed
    assert payments.status() is PaymentStatus.REFUND_FAILED
    assert outbound(failed) == [
        PaymentRefundFailedV1(order_id=ORDER, reason="The charge cannot be refunded.")
    ]


def test_replaying_events_rebuilds_state_and_version():
    payment = given(CAPTURED, REFUNDED)

    assert payment.version == 2
    assert payment.state.status is PaymentStatus.REFUNDED
    assert (payment.state.amount, payment.state.charge_id) == (AMOUNT, "ch_1")


def test_payments_are_published_as_captured_declined_and_refunded():
    assert outbound(CAPTURED) == [PaymentCapturedV1(order_id=ORDER, amount=AMOUNT)]
    assert outbound(DECLINED) == [PaymentDeclinedV1(order_id=ORDER, reason="declined")]
    assert outbound(REFUNDED) == [PaymentRefundedV1(order_id=ORDER, amount=AMOUNT)]


def test_a_captured_payment_keeps_the_cards_last_digits_and_the_vault_forgets_the_token():
    payments = Payments()

    payments.pay("tok_visa_3f9a")

    [captured] = payments.events()
    assert (captured.card_last4, captured.charge_id[:3]) == ("4242", "ch_")
    assert payments.vault.kept == {}


def test_a_charge_the_gateway_could_not_take_keeps_the_token_for_its_retry():
    payments = Payments()
    with pytest.raises(GatewayUnavailable):
        payments.pay("tok_error")

    assert payments.vault.redeem(payments.references["tok_error"]) == "tok_error"


def test_a_charge_redelivered_after_its_token_was_forgotten_changes_nothing():
    payments = Payments()
    payments.pay("tok_visa")
    assert payments.vault.kept == {}

    payments.pay("tok_visa")  # the same command, delivered again

    assert [type(e) for e in payments.events()] == [PaymentCaptured]
    assert payments.gateway.charges_captured(ORDER) == 1


def test_a_charge_whose_token_expired_unused_is_declined_without_calling_the_card():
    payments = Payments()
    payments.references["tok_visa"] = payments.vault.deposit(order_id=ORDER, token="tok_visa")
    payments.now = AT + timedelta(hours=1)

    payments.pay("tok_visa")

    assert payments.events() == [
        PaymentDeclined(order_id=ORDER, amount=AMOUNT, reason=CARD_GONE, declined_at=AT)
    ]
    assert [a.operation for a in payments.gateway.attempts()] == []


def test_a_charge_whose_token_expired_after_the_card_was_charged_records_that_charge():
    """The worker charged the card and died before recording it; the command comes back
    once the token has expired: the charge the gateway holds is the payment's."""
    payments = Payments(DatabaseFailsOnce())
    with pytest.raises(ConnectionError):
        payments.pay("tok_visa")
    payments.now = AT + timedelta(hours=2)

    payments.pay("tok_visa")

    [captured] = payments.events()
    assert captured.charge_id == payments.gateway.attempts()[0].charge_id
    assert payments.gateway.charges_captured(ORDER) == 1

"""The built-in fake payment gateway: Stripe-style test tokens, every attempt recorded,
never two charges for one idempotency key. The same behaviour in memory and in the
`payments_gateway_attempts` table."""

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from payments.domain.gateway import (
    ChargeDeclined,
    ChargeResult,
    GatewayTimeout,
    GatewayUnavailable,
    RefundDeclined,
)
from payments.gateway import (
    CHARGE,
    DECLINED,
    REFUND,
    REPLAYED,
    SUCCEEDED,
    TIMEOUT,
    UNAVAILABLE,
    FakeGateway,
    InMemoryFakeGateway,
)

KEY = "order-0001-charge"
AMOUNT = Decimal("26.97")


# The table-backed fake commits on a connection of its own, so no test transaction can
# roll it back: the databases (the embedded default has one for the gateway) are flushed
# after each test instead.
TABLE = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture(params=["in-memory", pytest.param("django", marks=TABLE)])
def gateway(request: pytest.FixtureRequest) -> InMemoryFakeGateway | FakeGateway:
    return FakeGateway() if request.param == "django" else InMemoryFakeGateway()


def charge(gateway, token: str, key: str = KEY) -> ChargeResult:
    return gateway.charge(idempotency_key=key, amount=AMOUNT, token=token)


def outcomes(gateway, reference: str = KEY) -> list[str]:
    return [attempt.outcome for attempt in gateway.attempts(reference)]


def test_tok_visa_is_captured(gateway):
    result = charge(gateway, "tok_visa")

    assert result.charge_id.startswith("ch_")
    assert outcomes(gateway) == [SUCCEEDED]
    assert gateway.charges_captured("0001") == 1


def test_the_same_key_returns_the_first_charge_and_never_charges_again(gateway):
    first = charge(gateway, "tok_visa")

    again = charge(gateway, "tok_visa")
    with_other_token = charge(gateway, "tok_decline")

    assert again == with_other_token == first
    assert outcomes(gateway) == [SUCCEEDED, REPLAYED, REPLAYED]
    assert gateway.charges_captured("0001") == 1


def test_a_double_charge_would_be_counted(gateway):
    charge(gateway, "tok_visa", key="order-0001-charge")
    charge(gateway, "tok_visa", key="order-0001-charge-again")
    charge(gateway, "tok_visa", key="order-0002-charge")

    assert gateway.charges_captured("0001") == 2
    assert gateway.charges_captured("0002") == 1


def test_tok_decline_is_declined_every_time(gateway):
    for _ in range(2):
        with pytest.raises(ChargeDeclined, match="declined"):
            charge(gateway, "tok_decline")

    assert outcomes(gateway) == [DECLINED, DECLINED]
    assert gateway.charges_captured("0001") == 0


def test_an_unknown_token_is_declined_without_the_reason_repeating_it(gateway):
    with pytest.raises(ChargeDeclined, match="No such token") as declined:
        charge(gateway, "tok_unheard_of")

    assert "tok_unheard_of" not in declined.value.reason


def test_a_test_token_with_a_suffix_behaves_as_the_token_before_it(gateway):
    charge(gateway, "tok_visa_3f9a")
    with pytest.raises(ChargeDeclined, match="declined"):
        charge(gateway, "tok_decline_3f9a", key="order-0002-charge")
    with pytest.raises(ChargeDeclined, match="No such token"):
        charge(gateway, "tok_visa3f9a", key="order-0003-charge")

    assert outcomes(gateway) == [SUCCEEDED]


def test_the_log_keeps_the_cards_last_digits_and_never_the_token(gateway):
    result = charge(gateway, "tok_visa_3f9a")

    [attempt] = gateway.attempts(KEY)
    assert result.card_last4 == attempt.card_last4 == "4242"
    assert "tok_visa" not in repr(attempt)


def test_tok_error_fails_twice_per_key_then_succeeds(gateway):
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            charge(gateway, "tok_error")
    with pytest.raises(GatewayUnavailable):
        charge(gateway, "tok_error", key="order-0002-charge")

    result = charge(gateway, "tok_error")

    assert result.charge_id.startswith("ch_")
    assert outcomes(gateway) == [UNAVAILABLE, UNAVAILABLE, SUCCEEDED]
    assert gateway.charges_captured("0001") == 1


def test_tok_timeout_never_answers_and_never_charges(gateway):
    for _ in range(3):
        with pytest.raises(GatewayTimeout):
            charge(gateway, "tok_timeout")

    assert outcomes(gateway) == [TIMEOUT] * 3
    assert gateway.charges_captured("0001") == 0


def test_a_timeout_is_a_transient_failure():
    assert issubclass(GatewayTimeout, GatewayUnavailable)


def test_a_captured_charge_is_refunded_once_per_key(gateway):
    charged = charge(gateway, "tok_visa")

    first = gateway.refund(idempotency_key="order-0001-refund", charge_id=charged.charge_id)
    again = gateway.refund(idempotency_key="order-0001-refund", charge_id=charged.charge_id)

    assert first == again
    assert first.refund_id.startswith("re_")
    assert [(a.operation, a.outcome) for a in gateway.attempts("0001")] == [
        (CHARGE, SUCCEEDED),
        (REFUND, SUCCEEDED),
        (REFUND, REPLAYED),
    ]
    assert gateway.refunds_made("0001") == 1


def test_a_charge_that_was_never_captured_cannot_be_refunded(gateway):
    with pytest.raises(RefundDeclined, match="ch_nope"):
        gateway.refund(idempotency_key="order-0001-refund", charge_id="ch_nope")


@TABLE
def test_the_table_backed_log_is_shared_by_every_instance():
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            charge(FakeGateway(), "tok_error")

    charge(FakeGateway(), "tok_error")
    charge(FakeGateway(), "tok_error")

    assert outcomes(FakeGateway()) == [UNAVAILABLE, UNAVAILABLE, SUCCEEDED, REPLAYED]


@TABLE
def test_an_attempt_outlives_the_callers_rolled_back_transaction():
    gateway = FakeGateway()

    with pytest.raises(GatewayUnavailable), transaction.atomic():
        charge(gateway, "tok_error")

    assert outcomes(gateway) == [UNAVAILABLE]


@TABLE
def test_the_fake_refuses_a_sqlite_file_its_caller_holds_rather_than_wait_forever():
    """One writer per SQLite file: on the embedded default the log has a file of its own;
    given the caller's own file, the fake refuses at once instead of deadlocking. On
    PostgreSQL the same call simply goes through on the gateway's own connection."""
    gateway = FakeGateway(using="default")
    with transaction.atomic():
        if connection.vendor == "sqlite":
            with pytest.raises(ImproperlyConfigured):
                charge(gateway, "tok_visa")
        else:
            assert charge(gateway, "tok_visa").charge_id.startswith("ch_")


@pytest.mark.postgres
@TABLE
def test_racing_processes_with_one_key_capture_one_charge():
    results: list[ChargeResult] = []
    start = threading.Barrier(4)

    def race() -> None:
        start.wait()
        results.append(charge(FakeGateway(), "tok_visa"))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({result.charge_id for result in results}) == 1
    assert sorted(outcomes(FakeGateway())) == [REPLAYED] * 3 + [SUCCEEDED]


def test_find_charge_answers_the_charge_captured_under_a_key_and_nothing_else(gateway):
    assert gateway.find_charge(idempotency_key=KEY) is None
    with pytest.raises(GatewayTimeout):
        charge(gateway, "tok_timeout")
    assert gateway.find_charge(idempotency_key=KEY) is None, "a timeout charged nothing"

    charged = charge(gateway, "tok_visa")

    assert gateway.find_charge(idempotency_key=KEY) == charged
    assert charged.amount == AMOUNT
    assert gateway.find_charge(idempotency_key="order-0002-charge") is None
    assert gateway.charges_captured("0001") == 1, "looking charges nothing"


def test_tok_refund_fail_is_captured_and_its_refunds_are_refused(gateway):
    charged = charge(gateway, "tok_refund_fail")

    for _ in range(2):
        with pytest.raises(RefundDeclined, match="cannot be refunded"):
            gateway.refund(idempotency_key="order-0001-refund", charge_id=charged.charge_id)

    assert gateway.refunds_made("0001") == 0


@pytest.mark.postgres
@TABLE
def test_a_charge_after_the_gateways_connection_died_goes_through(monkeypatch):
    """The worker runs without a health check on its kept connections: the gateway checks
    its own before each call, so a connection that died between charges fails none."""
    from django.db import connections

    from payments.gateway import _on_own_connection

    # As the reference worker runs: connections kept, not checked before each use.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 300)
    monkeypatch.setitem(connections.settings["default"], "CONN_HEALTH_CHECKS", False)
    _on_own_connection(lambda: connections["default"].close())  # reopened with them
    gateway = FakeGateway()
    charge(gateway, "tok_visa", key="first")

    def backend_pid() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    dead = _on_own_connection(backend_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [dead])

    assert charge(gateway, "tok_visa", key="second").charge_id.startswith("ch_")
    assert _on_own_connection(backend_pid) != dead
    _on_own_connection(lambda: connections["default"].close())  # not kept past the test

"""`Idempotency-Key` on POST /api/orders/: the same key and body get the first response,
and one order, however many times and however concurrently the request arrives."""

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django_redis import get_redis_connection
from rest_framework.response import Response
from rest_framework.test import APIClient

from inventory.commands import RegisterProduct
from platform_core.models import IdempotencyRecord, StoredEvent
from platform_core.web.idempotency import idempotent

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = "/api/orders/"
BODY = {
    "items": [{"sku": "MUG-1", "quantity": 2}],
    "shipping_address": {
        "name": "Ada Lovelace",
        "line1": "1 Analytical St",
        "city": "London",
        "postal_code": "N1 9GU",
        "country": "GB",
    },
    "payment_token": "tok_visa",
}


@pytest.fixture
def catalog(platform_runtime, project):
    platform_runtime.bus.handle(
        RegisterProduct(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=100)
    )
    project()


@pytest.fixture
def orders_placed():
    def count() -> int:
        return StoredEvent.objects.filter(event_type="orders.OrderPlaced").count()

    return count


def place(client: APIClient, key: str, body: dict[str, Any] = BODY) -> Response:
    return client.post(ORDERS, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_key_and_body_gets_the_first_response(
    catalog, customer_client, orders_placed
):
    first = place(customer_client, "checkout-1")

    retry = place(customer_client, "checkout-1")

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json() == first.json()
    assert retry["Location"] == first["Location"]
    assert retry["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert orders_placed() == 1


def test_a_key_whose_record_expired_is_free_again(
    catalog, customer_client, orders_placed, settings
):
    first = place(customer_client, "checkout-old")
    settings.IDEMPOTENCY_TTL_SECONDS = 0  # the first record is now past its time

    again = place(customer_client, "checkout-old", {**BODY, "payment_token": "tok_decline"})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] != first.json()["id"]
    assert not again.has_header("Idempotent-Replayed")
    assert orders_placed() == 2
    [record] = IdempotencyRecord.objects.filter(key="checkout-old")
    assert record.body["id"] == again.json()["id"], "the expired record was replaced"


def test_the_same_key_with_another_body_conflicts(catalog, customer_client, orders_placed):
    place(customer_client, "checkout-1")

    response = place(customer_client, "checkout-1", {**BODY, "payment_token": "tok_other"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert orders_placed() == 1


def test_different_customers_may_use_the_same_key(
    catalog, customer_client, other_client, orders_placed
):
    mine = place(customer_client, "checkout-1")
    theirs = place(other_client, "checkout-1")

    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["id"] != theirs.json()["id"]
    assert orders_placed() == 2


@pytest.mark.parametrize(
    "bad_body",
    [
        {**BODY, "items": []},
        {**BODY, "items": [{"sku": "NOPE-9", "quantity": 1}]},
    ],
    ids=["invalid-input", "unknown-product"],
)
def test_a_refused_request_does_not_use_up_its_key(
    catalog, customer_client, orders_placed, bad_body
):
    refused = place(customer_client, "checkout-1", bad_body)

    accepted = place(customer_client, "checkout-1")

    assert (refused.status_code, accepted.status_code) == (400, 202)
    assert orders_placed() == 1
    assert IdempotencyRecord.objects.get(key="checkout-1").status_code == 202


def test_without_a_key_every_request_places_an_order(catalog, customer_client, orders_placed):
    customer_client.post(ORDERS, BODY, format="json")
    customer_client.post(ORDERS, BODY, format="json")

    assert orders_placed() == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_a_key_must_be_1_to_255_characters(catalog, customer_client, orders_placed, key):
    response = place(customer_client, key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
    assert orders_placed() == 0


def post_concurrently(user: AbstractBaseUser, key: str, requests: int) -> list[Any]:
    """`requests` clients send the same request at the same moment; their responses."""
    barrier = threading.Barrier(requests)
    responses: list[Any] = [None] * requests

    def send(index: int) -> None:
        client = APIClient(SERVER_NAME="localhost")
        client.force_authenticate(user)
        try:
            barrier.wait(timeout=10)
            responses[index] = place(client, key)
        except Exception as error:
            responses[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def assert_one_order_for_all(responses: list[Any], orders_placed: Callable[[], int]) -> None:
    assert [getattr(r, "status_code", r) for r in responses] == [202] * len(responses)
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(not r.has_header("Idempotent-Replayed") for r in responses) == 1
    assert orders_placed() == 1


# The concurrent tests need PostgreSQL: SQLite's test database is a shared-cache in-memory
# one, where a concurrent writer fails at once ("database table is locked") instead of
# waiting its turn as it does on the file database the application uses.
@pytest.mark.postgres
def test_on_postgresql_the_keys_statements_run_prepared_and_replay_the_stored_body(
    catalog, customer_client
):
    first = place(customer_client, "checkout-prepared")
    retry = place(customer_client, "checkout-prepared")

    assert retry.json() == first.json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    table = IdempotencyRecord._meta.db_table
    assert any("pg_advisory_xact_lock" in sql for sql in prepared)
    assert any(sql.startswith("SELECT fingerprint") and table in sql for sql in prepared)
    assert any(sql.startswith(f"INSERT INTO {table}") for sql in prepared)
    stored = IdempotencyRecord.objects.get(key="checkout-prepared")
    assert stored.body == first.json()  # a JSON object, not a string of JSON


@pytest.mark.postgres
def test_concurrent_duplicates_place_one_order(catalog, customer, orders_placed):
    responses = post_concurrently(customer, "checkout-1", requests=8)

    assert_one_order_for_all(responses, orders_placed)


@pytest.mark.postgres
def test_concurrent_duplicates_place_one_order_even_without_the_cache_lock(
    catalog, customer, orders_placed, settings
):
    # A cache that holds nothing leaves the database's unique key as the only guard.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}

    responses = post_concurrently(customer, "checkout-1", requests=8)

    assert_one_order_for_all(responses, orders_placed)


@pytest.mark.postgres
def test_without_the_cache_lock_a_duplicate_waits_for_the_first_before_running_anything(
    settings,
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    request = SimpleNamespace(
        headers={"Idempotency-Key": "k-1"},
        user=SimpleNamespace(pk=1),
        data={"a": 1},
        method="POST",
        path="/x",
    )
    runs, inside, finish = [], threading.Event(), threading.Event()
    answers: dict[str, Response] = {}

    def handle() -> Response:
        runs.append(threading.current_thread().name)
        inside.set()
        assert finish.wait(10)
        return Response({"ok": True}, status=202)

    def call(name: str) -> None:
        try:
            answers[name] = idempotent(request, handle)  # type: ignore[arg-type]
        finally:
            connection.close()

    first = threading.Thread(target=call, args=("first",), name="first")
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=call, args=("second",), name="second")
    second.start()
    wait_for_a_session_waiting_on_an_advisory_lock()
    finish.set()
    first.join(10)
    second.join(10)

    assert runs == ["first"]
    assert answers["second"]["Idempotent-Replayed"] == "true"
    assert answers["second"].data == answers["first"].data


def wait_for_a_session_waiting_on_an_advisory_lock() -> None:
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return
            assert time.monotonic() < deadline, "the duplicate never waited for the key"
            time.sleep(0.01)


@pytest.mark.redis
def test_the_first_response_is_replayed_even_after_the_cache_is_flushed(
    catalog, customer_client, orders_placed
):
    first = place(customer_client, "checkout-1")
    get_redis_connection("default").flushdb()

    retry = place(customer_client, "checkout-1")

    assert retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert orders_placed() == 1

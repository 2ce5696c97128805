"""Refusing brute force: failed logins lock out (django-axes) per client address and per
username, on the token endpoint (429 JSON) and the login forms (429 page); placing
orders is rate-limited per user (429 JSON). Under a real Daphne: test_under_daphne.py."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.orders.test_api_orders import ORDERS, order_body
from tests.platform_core.web.endpoint_support import appended_rows, assert_json_error

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "/api/auth/token/"
LIMIT = 3
HOME, AWAY = "192.0.2.1", "198.51.100.7"


@pytest.fixture(autouse=True)
def low_limits(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.ORDER_RATE_LIMIT = "2/day"
    cache.clear()  # DRF's counts from an earlier run, kept in Redis
    yield
    cache.clear()


def ask_token(username: str, password: str, address: str = HOME):
    client = APIClient(SERVER_NAME="localhost", REMOTE_ADDR=address)
    return client.post(TOKEN, {"username": username, "password": password}, format="json")


def fail(username: str, times: int, address: str = HOME) -> None:
    """`times` failures short of the limit, each answered as a wrong password."""
    for _ in range(times):
        assert ask_token(username, "wrong-password", address).status_code == 400


def test_the_failure_that_reaches_the_limit_and_all_after_it_are_refused(customer, settings):
    fail("alice", LIMIT - 1)
    assert ask_token("alice", "alice-pass-123").status_code == 200, "under the limit"

    last_straw = ask_token("alice", "wrong-password")
    refused = ask_token("alice", "alice-pass-123")

    assert_json_error(last_straw, 429)

    error = assert_json_error(refused, 429)
    assert error["code"] == "too_many_login_failures"
    assert "token" not in refused.json()
    assert refused["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def test_a_username_is_locked_out_whatever_address_the_failures_came_from(customer):
    for n in range(LIMIT - 1):
        fail("alice", 1, address=f"203.0.113.{n + 1}")
    assert_json_error(ask_token("alice", "wrong", address="203.0.113.99"), 429)

    assert_json_error(ask_token("alice", "alice-pass-123", address=AWAY), 429)


def test_an_address_is_locked_out_whatever_usernames_it_tried(customer, other_customer):
    for name in ("mallory", "trent", "alice")[: LIMIT - 1]:
        fail(name, 1)
    assert_json_error(ask_token("eve", "guess"), 429)

    assert_json_error(ask_token("bob", "bob-pass-123"), 429)
    assert ask_token("bob", "bob-pass-123", address=AWAY).status_code == 200, "others log in"


def test_a_malformed_token_request_is_not_counted_as_a_failure(customer):
    client = APIClient(SERVER_NAME="localhost", REMOTE_ADDR=HOME)
    for _ in range(LIMIT + 1):
        assert client.post(TOKEN, {"username": 1}, format="json").status_code == 400

    assert ask_token("alice", "alice-pass-123").status_code == 200


@pytest.mark.parametrize("login", ["/accounts/login/", "/admin/login/"])
def test_a_login_form_answers_a_429_page_once_locked_out(staff_user, login):
    browser = Client(REMOTE_ADDR=HOME)
    for _ in range(LIMIT - 1):
        page = browser.post(login, {"username": "staff", "password": "wrong"})
        assert page.status_code == 200, "the form again, with its error"
    assert browser.post(login, {"username": "staff", "password": "wrong"}).status_code == 429

    page = browser.post(login, {"username": "staff", "password": "staff-pass-123"})

    assert page.status_code == 429
    assert page["Content-Type"].startswith("text/html")
    assert b'data-testid="locked-out"' in page.content
    assert "_auth_user_id" not in browser.session, "not logged in"


def test_form_and_token_failures_count_together(customer):
    Client(REMOTE_ADDR=HOME).post("/accounts/login/", {"username": "alice", "password": "x"})
    fail("alice", LIMIT - 2, address=AWAY)
    assert_json_error(ask_token("alice", "wrong", address=AWAY), 429)

    assert_json_error(ask_token("alice", "alice-pass-123", address=AWAY), 429)


def test_a_customer_placing_orders_too_fast_is_throttled(catalog, customer_client, other_client):
    for _ in range(2):
        assert customer_client.post(ORDERS, order_body(), format="json").status_code == 202

    refused = customer_client.post(ORDERS, order_body(), format="json")

    assert assert_json_error(refused, 429)["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    assert customer_client.get(ORDERS).status_code == 200, "reading is not throttled"
    assert other_client.post(ORDERS, order_body(), format="json").status_code == 202


def test_a_throttled_order_appends_nothing(catalog, customer_client):
    for _ in range(2):
        customer_client.post(ORDERS, order_body(), format="json")
    before = appended_rows()

    assert_json_error(customer_client.post(ORDERS, order_body(), format="json"), 429)
    assert appended_rows() == before


def test_with_the_rate_off_orders_are_not_throttled(catalog, customer_client, settings):
    settings.ORDER_RATE_LIMIT = None

    for _ in range(3):
        assert customer_client.post(ORDERS, order_body(), format="json").status_code == 202

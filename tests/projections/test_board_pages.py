"""The browser pages behind a login: the order board and an order's page (who sees what).
The live behaviour is driven in a real browser by tests/e2e/test_order_board_browser.py."""

from decimal import Decimal

import pytest
from django.test import Client

from inventory.commands import RegisterProduct
from tests.orders.test_api_orders import order_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alices_order(platform_runtime, project, customer_client) -> str:
    platform_runtime.bus.handle(
        RegisterProduct(sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10)
    )
    project()
    response = customer_client.post("/api/orders/", order_body(), format="json")
    assert response.status_code == 202, response.content
    project()
    return response.json()["id"]


def signed_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_the_board_sends_an_anonymous_visitor_to_log_in():
    response = Client().get("/board/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/board/"


def test_the_site_root_leads_to_the_board():
    response = Client().get("/")

    assert (response.status_code, response["Location"]) == (302, "/board/")


def test_logging_in_with_the_form_leads_to_the_board(customer):
    client = Client()
    form = client.get("/accounts/login/")
    assert b'name="username"' in form.content

    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"})

    assert (response.status_code, response["Location"]) == (302, "/board/")
    assert client.get("/board/").status_code == 200


def test_a_wrong_password_shows_the_login_form_again_with_an_error(customer):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert b'data-testid="login-error"' in response.content


def test_logging_out_ends_the_session(customer):
    client = signed_in(customer)

    response = client.post("/accounts/logout/")

    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")
    assert client.get("/board/").status_code == 302


def test_the_board_has_a_column_per_status_and_the_live_feed_address(staff_user):
    page = signed_in(staff_user).get("/board/").content.decode()

    for status in ("pending", "confirmed", "shipped", "delivered", "cancelled"):
        assert f'data-column="{status}"' in page
    assert 'data-ws-path="/ws/orders/"' in page
    assert 'data-testid="live-status"' in page


def test_only_a_customer_is_offered_the_demo_order_form(customer, staff_user):
    assert b'id="demo-order"' in signed_in(customer).get("/board/").content
    assert b'id="demo-order"' not in signed_in(staff_user).get("/board/").content


def test_a_customer_sees_the_page_of_their_own_order(customer, alices_order):
    response = signed_in(customer).get(f"/board/orders/{alices_order}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-ws-path="/ws/orders/{alices_order}/"' in page
    assert '"total": "15.00"' in page  # the read model, embedded for the first render


def test_staff_see_any_customers_order_page(staff_user, alices_order):
    assert signed_in(staff_user).get(f"/board/orders/{alices_order}/").status_code == 200


def test_another_customer_gets_404_for_an_order_that_is_not_theirs(other_customer, alices_order):
    assert signed_in(other_customer).get(f"/board/orders/{alices_order}/").status_code == 404


def test_the_pages_scripts_and_styles_are_served(customer):
    client = signed_in(customer)
    for name in ("live.js", "board.js", "order.js", "demo_order.js", "board.css"):
        assert client.get(f"/static/projections/{name}").status_code == 200, name

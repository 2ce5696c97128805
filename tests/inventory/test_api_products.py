"""GET /api/products/ (public) and the staff-only product writes."""

import pytest

from tests.support import stored_events

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTS = "/api/products/"
MUG = {"sku": "MUG-1", "name": "Mug", "price": "7.50", "initial_stock": 10}


def test_staff_register_a_product_and_anyone_can_list_it(staff_client, anonymous_client, project):
    response = staff_client.post(PRODUCTS, MUG, format="json")
    assert response.status_code == 202
    assert response.json()["sku"] == "MUG-1"
    project()

    listing = anonymous_client.get(PRODUCTS)

    assert listing.status_code == 200
    assert listing.json()["results"] == [
        {
            "sku": "MUG-1",
            "name": "Mug",
            "price": "7.50",
            "on_hand": 10,
            "reserved": 0,
            "available": 10,
        }
    ]


def test_a_customer_may_not_register_a_product(customer_client):
    before = stored_events()

    response = customer_client.post(PRODUCTS, MUG, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert stored_events() == before


def test_registering_needs_credentials(anonymous_client):
    response = anonymous_client.post(PRODUCTS, MUG, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert stored_events() == 0


def test_registering_a_sku_twice_conflicts(staff_client):
    assert staff_client.post(PRODUCTS, MUG, format="json").status_code == 202
    before = stored_events()

    response = staff_client.post(PRODUCTS, {**MUG, "name": "Other mug"}, format="json")

    assert response.status_code == 409
    assert "MUG-1" in response.json()["error"]["message"]
    assert stored_events() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", "mug-1"),
        ("sku", ""),
        ("price", "0"),
        ("price", "7.505"),
        ("price", "NaN"),
        ("price", "not a number"),
        ("initial_stock", -1),
        ("name", ""),
    ],
)
def test_an_invalid_product_is_refused_with_the_field_named(staff_client, field, value):
    response = staff_client.post(PRODUCTS, {**MUG, field: value}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"]
    assert field in error["details"]
    assert stored_events() == 0


def test_restocking_adds_to_stock_on_hand(staff_client, anonymous_client, project):
    staff_client.post(PRODUCTS, MUG, format="json")

    response = staff_client.post(f"{PRODUCTS}MUG-1/restock/", {"quantity": 5}, format="json")

    assert response.status_code == 202
    project()
    [product] = anonymous_client.get(PRODUCTS).json()["results"]
    assert (product["on_hand"], product["available"]) == (15, 15)


def test_restocking_an_unknown_product_is_not_found(staff_client):
    response = staff_client.post(f"{PRODUCTS}NOPE-1/restock/", {"quantity": 5}, format="json")

    assert response.status_code == 404
    assert "NOPE-1" in response.json()["error"]["message"]
    assert stored_events() == 0


@pytest.mark.parametrize("quantity", [0, -1, "many", None])
def test_a_restock_needs_a_positive_quantity(staff_client, quantity):
    staff_client.post(PRODUCTS, MUG, format="json")
    before = stored_events()

    response = staff_client.post(f"{PRODUCTS}MUG-1/restock/", {"quantity": quantity}, format="json")

    assert response.status_code == 400
    assert "quantity" in response.json()["error"]["details"]
    assert stored_events() == before


def test_a_customer_may_not_restock(staff_client, customer_client):
    staff_client.post(PRODUCTS, MUG, format="json")

    response = customer_client.post(f"{PRODUCTS}MUG-1/restock/", {"quantity": 5}, format="json")

    assert response.status_code == 403

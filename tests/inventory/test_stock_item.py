"""The StockItem aggregate: registering a product and restocking it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from inventory.domain.stock import InvalidProduct, InvalidRestock, StockItem
from inventory.events import ProductRegistered, StockReplenished

AT = datetime(2025, 1, 2, tzinfo=UTC)


def register(
    sku: str = "MUG-1", name: str = "Mug", price: str = "7.50", initial_stock: int = 10
) -> StockItem:
    return StockItem.register(
        sku=sku, name=name, price=Decimal(price), initial_stock=initial_stock, clock=lambda: AT
    )


def given(*events: object) -> StockItem:
    item = StockItem("MUG-1", clock=lambda: AT)
    for event in events:
        item.replay(event)
    return item


REGISTERED = ProductRegistered(
    sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10, registered_at=AT
)


def test_registering_a_product_records_it_with_its_initial_stock():
    item = register(name="  Mug  ")

    assert item.collect_pending() == [
        ProductRegistered(
            sku="MUG-1", name="Mug", price=Decimal("7.50"), initial_stock=10, registered_at=AT
        )
    ]
    assert item.state.on_hand == 10


@pytest.mark.parametrize("sku", ["A", "MUG-1", "0-ABC", "X" * 64])
def test_a_sku_is_upper_case_letters_digits_and_dashes(sku):
    assert register(sku=sku).id == sku


@pytest.mark.parametrize("sku", ["", "mug-1", "-MUG", "MUG 1", "MUG_1", "MÜG", "X" * 65], ids=repr)
def test_any_other_sku_is_refused(sku):
    with pytest.raises(InvalidProduct, match="SKU"):
        register(sku=sku)


@pytest.mark.parametrize("name", ["", "   "])
def test_a_product_needs_a_name(name):
    with pytest.raises(InvalidProduct, match="name"):
        register(name=name)


@pytest.mark.parametrize("price", ["0", "0.00", "-1.00", "7.505", "0.001"])
def test_a_price_is_positive_in_whole_cents(price):
    with pytest.raises(InvalidProduct, match="price"):
        register(price=price)


@pytest.mark.parametrize("price", ["0.01", "7.5", "12"])
def test_any_positive_whole_cent_price_is_accepted(price):
    assert register(price=price).state.price == Decimal(price)


def test_initial_stock_may_be_zero_but_not_negative():
    assert register(initial_stock=0).state.on_hand == 0
    with pytest.raises(InvalidProduct, match="stock"):
        register(initial_stock=-1)


def test_restocking_adds_to_stock_on_hand():
    item = given(REGISTERED)

    item.restock(5)
    item.restock(2)

    assert item.collect_pending() == [
        StockReplenished(sku="MUG-1", quantity=5, on_hand=15, replenished_at=AT),
        StockReplenished(sku="MUG-1", quantity=2, on_hand=17, replenished_at=AT),
    ]
    assert item.state.on_hand == 17


@pytest.mark.parametrize("quantity", [0, -3])
def test_a_restock_of_nothing_or_less_is_refused(quantity):
    item = given(REGISTERED)

    with pytest.raises(InvalidRestock):
        item.restock(quantity)

    assert item.collect_pending() == []
    assert item.state.on_hand == 10


@pytest.mark.parametrize("sku", ["MUG\n", "MUG-1\n", " MUG"])
def test_a_sku_with_surrounding_whitespace_is_refused(sku):
    with pytest.raises(InvalidProduct):
        StockItem.register(sku=sku, name="Mug", price=Decimal("1.00"), initial_stock=1)


@pytest.mark.parametrize("price", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_price_that_is_not_a_number_is_refused(price):
    with pytest.raises(InvalidProduct):
        StockItem.register(sku="MUG", name="Mug", price=Decimal(price), initial_stock=1)

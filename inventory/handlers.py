"""One function per inventory command: load, one aggregate call, save."""

from __future__ import annotations

from inventory.commands import RegisterProduct, RestockProduct
from inventory.domain.stock import ProductAlreadyRegistered, StockItem
from platform_core.repository import Repository


def register_product(command: RegisterProduct, *, stock: Repository[StockItem]) -> None:
    if stock.find(command.sku) is not None:
        raise ProductAlreadyRegistered(f"Product {command.sku} is already registered.")
    item = StockItem.register(
        sku=command.sku,
        name=command.name,
        price=command.price,
        initial_stock=command.initial_stock,
    )
    stock.save(item)


def restock_product(command: RestockProduct, *, stock: Repository[StockItem]) -> None:
    item = stock.get(command.sku)
    item.restock(command.quantity)
    stock.save(item)

"""One function per inventory command: load, one aggregate call, save.

The reservation commands touch one OrderReservation and the StockItems of its lines;
the bus runs each in one transaction, so they are saved together or not at all."""

from __future__ import annotations

from collections.abc import Iterable

from inventory.commands import (
    CommitStock,
    RegisterProduct,
    ReleaseStock,
    ReserveStock,
    RestockProduct,
)
from inventory.domain.reservation import OrderReservation
from inventory.domain.stock import ProductAlreadyRegistered, StockItem
from platform_core.eventsourcing.repository import Repository


def register_product(command: RegisterProduct, *, stock: Repository[StockItem]) -> None:
    if stock.find(command.sku) is not None:
        raise ProductAlreadyRegistered(f"Product {command.sku} is already registered.")
    item = StockItem.register(
        sku=command.sku,
        name=command.name,
        price=command.price,
        initial_stock=command.initial_stock,
        clock=stock.clock,
    )
    stock.save(item)


def restock_product(command: RestockProduct, *, stock: Repository[StockItem]) -> None:
    item = stock.get(command.sku)
    item.restock(command.quantity)
    stock.save(item)


def reserve_stock(
    command: ReserveStock,
    *,
    stock: Repository[StockItem],
    reservations: Repository[OrderReservation],
) -> None:
    if reservations.find(str(command.order_id)) is not None:
        return
    items = _load(stock, (line.sku for line in command.lines))
    reservation = OrderReservation.place(
        order_id=command.order_id, lines=command.lines, stock=items, clock=reservations.clock
    )
    _save(stock, items.values(), reservations, reservation)


def release_stock(
    command: ReleaseStock,
    *,
    stock: Repository[StockItem],
    reservations: Repository[OrderReservation],
) -> None:
    key = str(command.order_id)
    reservation = reservations.find(key) or reservations.new(key)
    items = _load(stock, (*reservation.skus, *command.skus))
    reservation.release(items)
    _save(stock, items.values(), reservations, reservation)


def commit_stock(
    command: CommitStock,
    *,
    stock: Repository[StockItem],
    reservations: Repository[OrderReservation],
) -> None:
    key = str(command.order_id)
    reservation = reservations.find(key) or reservations.new(key)
    items = _load(stock, (*reservation.skus, *command.skus))
    reservation.commit(items)
    _save(stock, items.values(), reservations, reservation)


def _load(stock: Repository[StockItem], skus: Iterable[str]) -> dict[str, StockItem]:
    """The StockItems of `skus` that exist, by SKU, each loaded once."""
    found = {sku: stock.find(sku) for sku in dict.fromkeys(skus)}
    return {sku: item for sku, item in found.items() if item is not None}


def _save(
    stock: Repository[StockItem],
    items: Iterable[StockItem],
    reservations: Repository[OrderReservation],
    reservation: OrderReservation,
) -> None:
    for item in items:
        stock.save(item)
    reservations.save(reservation)

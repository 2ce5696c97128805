"""The command bus of this deployment: every context's handlers with their repositories
and adapters (payment gateway, payment token vault, carrier, catalog)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import partial
from types import ModuleType
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db import transaction

from inventory import handlers as inventory_handlers
from inventory import integration as inventory_integration
from inventory.commands import (
    CommitStock,
    RegisterProduct,
    ReleaseStock,
    ReserveStock,
    RestockProduct,
)
from inventory.domain.reservation import OrderReservation
from inventory.domain.stock import StockItem
from orders import handlers as order_handlers
from orders import integration as orders_integration
from orders.commands import (
    CancelOrder,
    ConfirmOrder,
    MarkOrderDelivered,
    MarkOrderShipped,
    PlaceOrder,
    RefuseOrderCancellation,
    RequestOrderCancellation,
)
from orders.domain.order import Catalog, Order, PaymentVault, ProductQuote
from payments import handlers as payment_handlers
from payments import integration as payments_integration
from payments.commands import ProcessPayment, RefundPayment
from payments.domain.gateway import PaymentGateway
from payments.domain.payment import Payment
from payments.domain.vault import CardVault
from payments.gateway import FakeGateway
from payments.vault import TokenVault
from platform_core.eventsourcing.aggregate import Aggregate, Clock, utc_now
from platform_core.eventsourcing.bus import CommandBus, Handler, record_append
from platform_core.eventsourcing.eventstore import AppendResult, EventStore
from platform_core.eventsourcing.repository import Repository
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.eventsourcing.snapshots import SnapshotStore
from platform_core.messaging.outbox import IntegrationEvents, Outbox
from projections.queries import product_prices
from shipping import handlers as shipping_handlers
from shipping import integration as shipping_integration
from shipping.carrier import FakeCarrier
from shipping.commands import CancelShipment, CreateShipment, DeliverShipment, DispatchShipment
from shipping.domain.shipment import Carrier, Shipment

A = TypeVar("A", bound=Aggregate[Any])


class ReadModelCatalog:
    """The orders context's `Catalog` port, answered from the product read model."""

    def quote(self, skus: Sequence[str]) -> Mapping[str, ProductQuote]:
        return {
            sku: ProductQuote(name=name, unit_price=price)
            for sku, (name, price) in product_prices(skus).items()
        }


def build_gateway() -> PaymentGateway:
    """The fake gateway, its attempt log on a connection of its own (so a rolled-back
    command keeps its attempts): in PostgreSQL, or in the embedded default's second SQLite
    file, which outlives a restart as a real gateway's records would."""
    return FakeGateway()


class Vault(PaymentVault, CardVault, Protocol):
    """The payment token vault as both contexts see it: orders deposit, payments redeem."""


def build_vault(clock: Clock = utc_now) -> Vault:
    """The vault in the main database, so a token is kept in the order's transaction and
    forgotten in the one that records its charge."""
    return TokenVault(ttl=timedelta(seconds=settings.PAYMENT_TOKEN_TTL_SECONDS), clock=clock)


class RepositoryFactory(Protocol):
    """Makes the repository of one aggregate type, publishing through `integration`
    (a context's integration module); `long_lived` streams get snapshots."""

    def __call__(
        self, aggregate_type: type[A], integration: ModuleType, *, long_lived: bool = False
    ) -> Repository[A]: ...


def build_bus(
    *,
    store: EventStore,
    codec: EventCodec,
    snapshots: SnapshotStore | None,
    log_changed: threading.Event,
    outbox: Outbox,
    gateway: PaymentGateway,
    clock: Clock = utc_now,
) -> CommandBus:
    def after_append(result: AppendResult) -> None:
        record_append(result)
        transaction.on_commit(log_changed.set)

    def repository(
        aggregate_type: type[A], integration: ModuleType, *, long_lived: bool = False
    ) -> Repository[A]:
        publisher = IntegrationEvents(
            source=integration.SOURCE,
            topic=integration.TOPIC,
            translate=integration.outbound,
            codec=codec,
            outbox=outbox,
        )
        return Repository(
            aggregate_type,
            store=store,
            codec=codec,
            # Only a stream that grows without end needs snapshots: an order, a payment or
            # a shipment has a handful of events, and looking for a snapshot first would
            # add a query to every load.
            snapshots=snapshots if long_lived else None,
            snapshot_every=settings.SNAPSHOT_EVERY,
            on_append=after_append,
            publish=publisher.publish,
            clock=clock,
        )

    handlers = build_handlers(
        repository=repository,
        gateway=gateway,
        vault=build_vault(clock),
        catalog=ReadModelCatalog(),
        carrier=FakeCarrier(),
    )
    return CommandBus(handlers, transaction=transaction.atomic)


def build_handlers(
    *,
    repository: RepositoryFactory,
    gateway: PaymentGateway,
    vault: Vault,
    catalog: Catalog,
    carrier: Carrier,
) -> dict[type[Any], Handler]:
    """Every context's command handlers, with their repositories and adapters (tests
    build them on in-memory adapters)."""
    orders = repository(Order, orders_integration)
    stock = repository(StockItem, inventory_integration, long_lived=True)
    reservations = repository(OrderReservation, inventory_integration)
    payments = repository(Payment, payments_integration)
    shipments = repository(Shipment, shipping_integration)
    return {
        PlaceOrder: partial(
            order_handlers.place_order, orders=orders, catalog=catalog, vault=vault
        ),
        ConfirmOrder: partial(order_handlers.confirm_order, orders=orders),
        RequestOrderCancellation: partial(order_handlers.request_order_cancellation, orders=orders),
        CancelOrder: partial(order_handlers.cancel_order, orders=orders),
        RefuseOrderCancellation: partial(order_handlers.refuse_order_cancellation, orders=orders),
        MarkOrderShipped: partial(order_handlers.mark_order_shipped, orders=orders),
        MarkOrderDelivered: partial(order_handlers.mark_order_delivered, orders=orders),
        RegisterProduct: partial(inventory_handlers.register_product, stock=stock),
        RestockProduct: partial(inventory_handlers.restock_product, stock=stock),
        ReserveStock: partial(
            inventory_handlers.reserve_stock, stock=stock, reservations=reservations
        ),
        ReleaseStock: partial(
            inventory_handlers.release_stock, stock=stock, reservations=reservations
        ),
        CommitStock: partial(
            inventory_handlers.commit_stock, stock=stock, reservations=reservations
        ),
        ProcessPayment: partial(
            payment_handlers.process_payment, payments=payments, gateway=gateway, vault=vault
        ),
        RefundPayment: partial(payment_handlers.refund_payment, payments=payments, gateway=gateway),
        CreateShipment: partial(
            shipping_handlers.create_shipment, shipments=shipments, carrier=carrier
        ),
        CancelShipment: partial(shipping_handlers.cancel_shipment, shipments=shipments),
        DispatchShipment: partial(shipping_handlers.dispatch_shipment, shipments=shipments),
        DeliverShipment: partial(shipping_handlers.deliver_shipment, shipments=shipments),
    }

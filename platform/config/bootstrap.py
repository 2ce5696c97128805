"""The composition root: the only place that knows every context and every adapter."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction

from inventory import events as inventory_events
from inventory import handlers as inventory_handlers
from inventory import integration as inventory_integration
from inventory.commands import RegisterProduct, RestockProduct
from inventory.domain.stock import StockItem
from orders import events as orders_events
from orders import handlers as order_handlers
from orders import integration as orders_integration
from orders.commands import (
    CancelOrder,
    ConfirmOrder,
    MarkOrderDelivered,
    MarkOrderShipped,
    PlaceOrder,
)
from orders.domain.order import Order, ProductQuote
from platform_core.aggregate import Aggregate
from platform_core.bus import CommandBus, record_append
from platform_core.consumers import ConsumerGroup
from platform_core.django_snapshots import DjangoSnapshotStore
from platform_core.eventstore import AppendResult, EventStore
from platform_core.kafka import KafkaPublisher, LocalPublisher
from platform_core.messaging import Publisher
from platform_core.outbox import IntegrationEvents, Outbox, Translate
from platform_core.projector import ProjectionRunner
from platform_core.relay import OutboxRelay
from platform_core.repository import Repository
from platform_core.runtime import Runtime
from platform_core.serialization import EventCodec
from platform_core.snapshots import SnapshotStore
from platform_core.sql_store import event_store_for
from projections.order_summary import OrderSummaryProjection
from projections.product_stock import ProductStockProjection
from projections.queries import product_prices

A = TypeVar("A", bound=Aggregate[Any])


class ReadModelCatalog:
    """The orders context's `Catalog` port, answered from the product read model."""

    def quote(self, skus: Sequence[str]) -> Mapping[str, ProductQuote]:
        return {
            sku: ProductQuote(name=name, unit_price=price)
            for sku, (name, price) in product_prices(skus).items()
        }


def build_codec() -> EventCodec:
    return EventCodec(
        [
            *orders_events.EVENTS,
            *orders_events.INTEGRATION_EVENTS,
            *inventory_events.EVENTS,
            *inventory_events.INTEGRATION_EVENTS,
        ]
    )


def build_consumer_groups() -> dict[str, ConsumerGroup]:
    """The consumer groups this deployment runs (`manage.py consume <name>`)."""
    return {}


def kafka_config() -> dict[str, str]:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}


def build_publisher(groups: Mapping[str, ConsumerGroup]) -> Publisher:
    """Kafka when KAFKA_BOOTSTRAP_SERVERS is set, else the in-process transport."""
    if settings.KAFKA_BOOTSTRAP_SERVERS:
        return KafkaPublisher(kafka_config())
    return LocalPublisher(list(groups.values()))


def build_bus(
    *,
    store: EventStore,
    codec: EventCodec,
    snapshots: SnapshotStore | None,
    log_changed: threading.Event,
    outbox: Outbox,
) -> CommandBus:
    def after_append(result: AppendResult) -> None:
        record_append(result)
        transaction.on_commit(log_changed.set)

    def repository(
        aggregate_type: type[A], *, source: str, topic: str, translate: Translate
    ) -> Repository[A]:
        integration = IntegrationEvents(
            source=source, topic=topic, translate=translate, codec=codec, outbox=outbox
        )
        return Repository(
            aggregate_type,
            store=store,
            codec=codec,
            snapshots=snapshots,
            snapshot_every=settings.SNAPSHOT_EVERY,
            on_append=after_append,
            publish=integration.publish,
        )

    orders = repository(
        Order,
        source=orders_integration.SOURCE,
        topic=orders_events.TOPIC,
        translate=orders_integration.outbound,
    )
    stock = repository(
        StockItem,
        source=inventory_integration.SOURCE,
        topic=inventory_events.TOPIC,
        translate=inventory_integration.outbound,
    )
    return CommandBus(
        {
            PlaceOrder: partial(
                order_handlers.place_order, orders=orders, catalog=ReadModelCatalog()
            ),
            ConfirmOrder: partial(order_handlers.confirm_order, orders=orders),
            CancelOrder: partial(order_handlers.cancel_order, orders=orders),
            MarkOrderShipped: partial(order_handlers.mark_order_shipped, orders=orders),
            MarkOrderDelivered: partial(order_handlers.mark_order_delivered, orders=orders),
            RegisterProduct: partial(inventory_handlers.register_product, stock=stock),
            RestockProduct: partial(inventory_handlers.restock_product, stock=stock),
        },
        transaction=transaction.atomic,
    )


def build_runtime() -> Runtime:
    store, codec = event_store_for(), build_codec()
    log_changed, outbox_changed = threading.Event(), threading.Event()
    groups = build_consumer_groups()
    bus = build_bus(
        store=store,
        codec=codec,
        snapshots=DjangoSnapshotStore(),
        log_changed=log_changed,
        outbox=Outbox(wake=outbox_changed),
    )
    return Runtime(
        bus=bus,
        store=store,
        codec=codec,
        projections=ProjectionRunner(
            [OrderSummaryProjection(), ProductStockProjection()], store=store, codec=codec
        ),
        relay=OutboxRelay(build_publisher(groups)),
        consumer_groups=groups,
        kafka_config=kafka_config(),
        log_changed=log_changed,
        outbox_changed=outbox_changed,
    )

"""The composition root: the only place that knows every context and every adapter.

`build_runtime` (named by the PLATFORM_RUNTIME setting) assembles the event store, the
command bus (`config.command_bus`), the sagas, the consumer groups and the outbox relay
(`config.routing`), and the projections.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings

from config.celery import app as celery_app
from config.command_bus import build_bus, build_gateway
from config.routing import build_consumer_groups, send_to_context
from inventory import events as inventory_events
from orders import events as orders_events
from orders.sagas import order_fulfillment
from payments import events as payments_events
from platform_core.commands.command_outbox import CeleryCommandPublisher, relay_lanes
from platform_core.eventsourcing.aggregate import utc_now
from platform_core.eventsourcing.serialization import EventCodec
from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.envelope import Publisher
from platform_core.messaging.kafka import KafkaPublisher
from platform_core.messaging.local import LocalPublisher
from platform_core.messaging.outbox import Outbox
from platform_core.messaging.relay import OutboxRelay
from platform_core.projections.projector import ProjectionRunner
from platform_core.runtime import Runtime
from platform_core.sagas.manager import SagaManager
from platform_core.storage.django_snapshots import DjangoSnapshotStore
from platform_core.storage.sql_store import event_store_for
from projections.live import announce_orders
from projections.order_summary import OrderSummaryProjection
from projections.product_stock import ProductStockProjection
from shipping import events as shipping_events


def build_codec() -> EventCodec:
    codec = EventCodec(
        event_class
        for events in (orders_events, inventory_events, payments_events, shipping_events)
        for event_class in (*events.EVENTS, *events.INTEGRATION_EVENTS)
    )
    for event_type, from_version, upcaster in orders_events.UPCASTERS:
        codec.register_upcaster(event_type, from_version, upcaster)
    return codec


def kafka_config() -> dict[str, str]:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}


def build_relay(groups: Mapping[str, ConsumerGroup]) -> OutboxRelay:
    """Integration events to Kafka when KAFKA_BOOTSTRAP_SERVERS is set, else to the
    in-process transport; command tasks to Celery."""
    if settings.KAFKA_BOOTSTRAP_SERVERS:
        return with_commands(KafkaPublisher(kafka_config()))
    return with_commands(LocalPublisher(list(groups.values())))


def with_commands(events: Publisher) -> OutboxRelay:
    """A relay with `events` for the outbox's integration events, Celery for its
    command tasks."""
    return OutboxRelay(
        lanes=relay_lanes(commands=CeleryCommandPublisher(celery_app), events=events),
        leader_idle_seconds=settings.RELAY_LEADER_IDLE_SECONDS,
    )


def build_runtime() -> Runtime:
    store, codec = event_store_for(), build_codec()
    log_changed, outbox_changed = threading.Event(), threading.Event()
    outbox = Outbox(wake=outbox_changed)
    clock = utc_now  # the one clock of events and saga deadlines
    bus = build_bus(
        store=store,
        codec=codec,
        snapshots=DjangoSnapshotStore(),
        log_changed=log_changed,
        outbox=outbox,
        gateway=build_gateway(),
        clock=clock,
    )
    fulfillment = order_fulfillment(
        step_deadline=timedelta(seconds=settings.SAGA_STEP_SECONDS),
        give_up_after=timedelta(seconds=settings.SAGA_GIVE_UP_SECONDS),
        stuck_after=settings.SAGA_STUCK_AFTER,
    )
    sagas = {fulfillment.name: SagaManager(fulfillment, send=send_to_context, now=clock)}
    groups = build_consumer_groups(bus.handle, sagas)
    return Runtime(
        bus=bus,
        store=store,
        codec=codec,
        projections=ProjectionRunner(
            [OrderSummaryProjection(announce=announce_orders), ProductStockProjection()],
            store=store,
            codec=codec,
        ),
        outbox=outbox,
        relay=build_relay(groups),
        consumer_groups=groups,
        sagas=sagas,
        kafka_config=kafka_config(),
        log_changed=log_changed,
        outbox_changed=outbox_changed,
    )

"""One function per shipping command: load, one aggregate call, save."""

from __future__ import annotations

from platform_core.eventsourcing.repository import Repository
from shipping.commands import CancelShipment, CreateShipment, DeliverShipment, DispatchShipment
from shipping.domain.shipment import Carrier, Shipment


def create_shipment(
    command: CreateShipment, *, shipments: Repository[Shipment], carrier: Carrier
) -> None:
    existing = shipments.find(command.shipment_id)
    if existing is not None:
        existing.ensure_for(command.order_id)
        return
    shipment = Shipment.create(
        shipment_id=command.shipment_id,
        order_id=command.order_id,
        address=command.address,
        carrier=carrier,
        clock=shipments.clock,
    )
    shipments.save(shipment)


def cancel_shipment(command: CancelShipment, *, shipments: Repository[Shipment]) -> None:
    shipment = shipments.find(command.shipment_id)
    if shipment is None and command.order_id is not None:
        shipment = Shipment.void(
            shipment_id=command.shipment_id,
            order_id=command.order_id,
            reason=command.reason,
            clock=shipments.clock,
        )
    else:
        shipment = shipment or shipments.get(command.shipment_id)
        shipment.cancel(command.reason)
    shipments.save(shipment)


def dispatch_shipment(command: DispatchShipment, *, shipments: Repository[Shipment]) -> None:
    shipment = shipments.get(command.shipment_id)
    shipment.dispatch()
    shipments.save(shipment)


def deliver_shipment(command: DeliverShipment, *, shipments: Repository[Shipment]) -> None:
    shipment = shipments.get(command.shipment_id)
    shipment.deliver()
    shipments.save(shipment)

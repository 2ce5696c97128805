"""Shipment write endpoints (staff): they stand in for the carrier's webhook.

A shipment that does not exist answers 404 and a step out of order (delivering before
dispatching, dispatching a cancelled shipment) answers 409, both from the domain's errors.
Repeating the step a shipment has already taken is accepted and records nothing.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from platform_core.runtime import runtime
from platform_core.web.http import accepted, dispatch_command
from platform_core.web.openapi import links
from platform_core.web.serializers import StrictSerializer
from shipping.commands import DeliverShipment, DispatchShipment


class ShipmentIdConverter:
    """A shipment id in a URL path (letters, digits, `-_.:`, as the saga and carriers make
    them); anything else (a NUL byte, a 5,000-character id) is a 404 before it reaches a
    stream."""

    regex = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


@extend_schema_serializer(component_name="ShipmentAccepted")
class ShipmentAcceptedSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.CharField()
    log_position = serializers.CharField(required=False)


def _step(request: Request, command: Any, status: str) -> Response:
    # No body is taken: anything but none or `{}` is refused rather than ignored.
    StrictSerializer(data=request.data).is_valid(raise_exception=True)
    outcome = dispatch_command(request, runtime().bus, command)
    return accepted({"id": command.shipment_id, "status": status}, outcome)


class ShipmentDispatchApi(APIView):
    """Mark a shipment as handed to the carrier (staff)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={202: ShipmentAcceptedSerializer})
    @links(
        202,
        DeliverShipment={
            "operationId": "shipments_deliver_create",
            "parameters": {"shipment_id": "$response.body#/id"},
        },
    )
    def post(self, request: Request, shipment_id: str) -> Response:
        return _step(request, DispatchShipment(shipment_id=shipment_id), "dispatched")


class ShipmentDeliverApi(APIView):
    """Mark a dispatched shipment as delivered (staff)."""

    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={202: ShipmentAcceptedSerializer})
    def post(self, request: Request, shipment_id: str) -> Response:
        return _step(request, DeliverShipment(shipment_id=shipment_id), "delivered")

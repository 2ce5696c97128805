"""Order write endpoints. Writes answer 202: the read model follows from the events."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.commands import OrderItem, PlaceOrder, RequestOrderCancellation
from orders.events import ShippingAddress
from orders.queries import order_events
from platform_core.runtime import runtime
from platform_core.web.fields import StrictCharField, StrictIntegerField, StrictRegexField
from platform_core.web.http import accepted, dispatch_command
from platform_core.web.idempotency import MAX_KEY_LENGTH, idempotent
from platform_core.web.openapi import RATE_LIMITED, links
from platform_core.web.serializers import StrictSerializer
from platform_core.web.throttles import UserRateFromSettings

MAX_LINES = 100
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    OpenApiParameter.HEADER,
    description="Makes retries safe: the same key and body get the first answer.",
)


def _customer_id(request: Request) -> int:
    return int(str(request.user.pk))


def _viewer(request: Request) -> int | None:
    """The customer whose orders the request may see; None for staff, who see all."""
    return None if request.user.is_staff else _customer_id(request)


class OrderPlaceThrottle(UserRateFromSettings):
    scope = "orders"
    rate_setting = "ORDER_RATE_LIMIT"


class OrderPlaceApi(APIView):
    """Place an order. Send `Idempotency-Key` to make retries safe. A user placing more
    than ORDER_RATE_LIMIT orders gets 429 with `Retry-After`."""

    throttle_classes = [OrderPlaceThrottle]

    @extend_schema_serializer(component_name="OrderPlaceInput")
    class InputSerializer(StrictSerializer):
        @extend_schema_serializer(component_name="OrderPlaceItem")
        class ItemSerializer(StrictSerializer):
            sku = StrictCharField(max_length=64)
            quantity = StrictIntegerField(min_value=1, max_value=10_000)

        @extend_schema_serializer(component_name="OrderPlaceAddress")
        class AddressSerializer(StrictSerializer):
            name = StrictCharField(max_length=200)
            line1 = StrictCharField(max_length=200)
            line2 = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
            city = StrictCharField(max_length=100)
            postal_code = StrictCharField(max_length=20)
            country = StrictRegexField(r"^[A-Z]{2}\Z", help_text="ISO 3166-1 alpha-2")

        items = ItemSerializer(many=True, allow_empty=False, max_length=MAX_LINES)  # type: ignore[call-arg]
        shipping_address = AddressSerializer()
        payment_token = StrictCharField(max_length=100)

    @extend_schema_serializer(component_name="OrderPlaceOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        status = serializers.CharField()
        log_position = serializers.CharField(required=False)

    @extend_schema(
        request=InputSerializer,
        responses={202: OutputSerializer, 429: RATE_LIMITED},
        parameters=[IDEMPOTENCY_KEY],
    )
    @links(
        202,
        GetOrder={
            "operationId": "orders_retrieve",
            "parameters": {
                "order_id": "$response.body#/id",
                "min_position": "$response.body#/log_position",
            },
        },
        CancelOrder={
            "operationId": "orders_cancel_create",
            "parameters": {"order_id": "$response.body#/id"},
        },
        GetOrderEvents={
            "operationId": "orders_events_list",
            "parameters": {"order_id": "$response.body#/id"},
        },
    )
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self._place(request))

    def _place(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        order_id = uuid.uuid4()
        command = PlaceOrder(
            order_id=order_id,
            customer_id=_customer_id(request),
            items=tuple(OrderItem(**item) for item in data["items"]),
            shipping_address=ShippingAddress(**data["shipping_address"]),
            payment_token=data["payment_token"],
        )
        outcome = dispatch_command(request, runtime().bus, command)
        location = reverse("order-detail", kwargs={"order_id": order_id})
        return accepted({"id": str(order_id), "status": "pending"}, outcome, location)


class OrderCancelApi(APIView):
    """Ask to cancel an order that has not shipped yet (409 once it has). The order is
    cancelled once its shipment, if booked, is cancelled; a shipment dispatched meanwhile
    refuses, and the order then goes on (its history says the cancellation was refused)."""

    @extend_schema_serializer(component_name="OrderCancelInput")
    class InputSerializer(StrictSerializer):
        reason = StrictCharField(max_length=500)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "CancelAccepted",
                {"id": serializers.UUIDField(), "cancellation": serializers.CharField()},
            )
        },
    )
    def post(self, request: Request, order_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command = RequestOrderCancellation(
            order_id=order_id,
            reason=serializer.validated_data["reason"],
            requested_by=_viewer(request),
        )
        outcome = dispatch_command(request, runtime().bus, command)
        return accepted({"id": str(order_id), "cancellation": "requested"}, outcome)


class OrderEventsApi(APIView):
    """The order's stored events, oldest first (the owner or staff)."""

    @extend_schema_serializer(component_name="OrderEventOutput")
    class OutputSerializer(serializers.Serializer):
        position = serializers.IntegerField()
        version = serializers.IntegerField()
        type = serializers.CharField(source="event_type")
        schema_version = serializers.IntegerField()
        # Declared fields leave the class namespace, so this does not shadow `.data`.
        data = serializers.JSONField()  # type: ignore[assignment]
        metadata = serializers.JSONField()
        recorded_at = serializers.DateTimeField()

    @extend_schema(responses={200: OutputSerializer(many=True)})
    def get(self, request: Request, order_id: uuid.UUID) -> Response:
        rt = runtime()
        events = order_events(order_id, viewer_id=_viewer(request), store=rt.store, codec=rt.codec)
        rows = [
            {
                "position": e.position,
                "version": e.version,
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "data": msgspec.json.decode(e.data),
                "metadata": msgspec.to_builtins(e.metadata),
                "recorded_at": e.recorded_at,
            }
            for e in events
        ]
        return Response(self.OutputSerializer(rows, many=True).data)

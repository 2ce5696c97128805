"""Product write endpoints (staff only)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.commands import RegisterProduct, RestockProduct
from inventory.domain.stock import SKU_PATTERN
from platform_core.runtime import runtime
from platform_core.web.fields import (
    StrictCharField,
    StrictDecimalField,
    StrictIntegerField,
    StrictRegexField,
)
from platform_core.web.http import accepted, dispatch_command
from platform_core.web.openapi import links
from platform_core.web.serializers import StrictSerializer


class SkuConverter:
    """A SKU in a URL path; anything else (a NUL byte, 5,000 characters) is a 404 before
    it reaches the stock's stream."""

    regex = SKU_PATTERN.pattern

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


_Accepted = inline_serializer("ProductAccepted", {"sku": serializers.CharField()})


class ProductRegisterApi(APIView):
    """Register a product with its initial stock (staff)."""

    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="ProductRegisterInput")
    class InputSerializer(StrictSerializer):
        sku = StrictRegexField(rf"^{SKU_PATTERN.pattern}\Z", help_text="upper-case SKU")
        name = StrictCharField(max_length=200)
        price = StrictDecimalField(max_digits=12, decimal_places=2, positive=True)
        initial_stock = StrictIntegerField(min_value=0, max_value=1_000_000)

    @extend_schema(request=InputSerializer, responses={202: _Accepted})
    @links(
        202,
        RestockProduct={
            "operationId": "products_restock_create",
            "parameters": {"sku": "$response.body#/sku"},
        },
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = dispatch_command(
            request, runtime().bus, RegisterProduct(**serializer.validated_data)
        )
        return accepted({"sku": serializer.validated_data["sku"]}, outcome)


class ProductRestockApi(APIView):
    """Add stock to a product (staff)."""

    permission_classes = [IsAdminUser]

    @extend_schema_serializer(component_name="ProductRestockInput")
    class InputSerializer(StrictSerializer):
        quantity = StrictIntegerField(min_value=1, max_value=1_000_000)

    @extend_schema(request=InputSerializer, responses={202: _Accepted})
    def post(self, request: Request, sku: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command = RestockProduct(sku=sku, quantity=serializer.validated_data["quantity"])
        outcome = dispatch_command(request, runtime().bus, command)
        return accepted({"sku": sku}, outcome)

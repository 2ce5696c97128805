"""`POST /api/auth/token/`: DRF's token view, its input as strict as the rest of the API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from platform_core.web.fields import StrictCharField
from platform_core.web.openapi import RATE_LIMITED
from platform_core.web.parsers import StrictJSONParser


@extend_schema_serializer(component_name="TokenInput")
class TokenInputSerializer(AuthTokenSerializer):
    username = StrictCharField(write_only=True)
    password = StrictCharField(
        write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )


class TokenObtainApi(ObtainAuthToken):
    """A token for a username and password (400 if they do not match); send it back as
    `Authorization: Token <token>`."""

    parser_classes = (FormParser, MultiPartParser, StrictJSONParser)
    permission_classes = (AllowAny,)  # DRF's has none, which the schema reads as login needed
    serializer_class = TokenInputSerializer

    @extend_schema(
        request=TokenInputSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            429: RATE_LIMITED,
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)

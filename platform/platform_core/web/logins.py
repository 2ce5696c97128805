"""Logins under brute force: the API's token endpoint and the login forms lock out.

django-axes counts failed logins per client address and per username
(AXES_LOCKOUT_PARAMETERS) in the database, so every web process sees the same counts.
AXES_FAILURE_LIMIT failures lock that address, or that username, out for
AXES_COOLOFF_TIME, a correct password included. `TokenObtainApi` then answers 429 in
the API's error format with `Retry-After`; a login form (the board's, the admin's)
answers a 429 page from AxesMiddleware (AXES_LOCKOUT_TEMPLATE).
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.http import HttpRequest
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from platform_core.web.fields import StrictCharField
from platform_core.web.openapi import RATE_LIMITED
from platform_core.web.parsers import StrictJSONParser
from platform_core.web.serializers import StrictSerializer


class LoginAttemptsBackend(AxesStandaloneBackend):  # type: ignore[misc]
    """django-axes' lockout check, first in AUTHENTICATION_BACKENDS, for logins over HTTP.

    `authenticate()` without a request (a management command, a test client's `login()`)
    has no client address to count; axes would refuse it outright, this lets the next
    backend decide."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)
        return None


class LoginLockedOut(Throttled):
    default_code = "too_many_login_failures"
    default_detail = "Too many failed logins from this address or for this username."


@extend_schema_serializer(component_name="TokenInput")
class TokenInputSerializer(StrictSerializer, AuthTokenSerializer):
    username = StrictCharField(max_length=150, write_only=True)
    password = StrictCharField(
        max_length=1024, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )


class TokenObtainApi(ObtainAuthToken):
    """A DRF token for a username and password (400 when they do not match). After too
    many failures from the client's address or for the username, 429 with `Retry-After`
    until the lockout ends, whatever the password."""

    # A client logging in again still sends its old token: the password decides here.
    authentication_classes = ()
    permission_classes = (AllowAny,)  # DRF's has none, which the schema reads as login needed
    parser_classes = (FormParser, MultiPartParser, StrictJSONParser)
    serializer_class = TokenInputSerializer

    @extend_schema(
        request=TokenInputSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            429: RATE_LIMITED,
        },
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            # django-axes flags the request it refused (DRF's, which authenticate() saw).
            if getattr(request, "axes_locked_out", False):
                cool_off = get_cool_off(request)
                raise LoginLockedOut(wait=cool_off.total_seconds() if cool_off else None) from None
            raise

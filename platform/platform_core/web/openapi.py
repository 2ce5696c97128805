"""The OpenAPI document (drf-spectacular) as the API behaves: every error status an
operation can answer, with the error body, and every constraint its input has.

`AutoSchema` is the schema class for every view (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS).
It adds to each operation what the platform's HTTP edge does for it, so views declare
only their own answers:

- 400 when the operation takes input (a body, query or header parameters);
- 401 always: a wrong `Authorization` header is refused even where no login is needed;
- 403 where a permission looks past authentication (staff only), and on writes, where a
  session without its CSRF token is refused;
- 404 where the path names a resource, and on paginated lists (a page past the end);
- 406 always: an `Accept` header that rules out JSON;
- 409 on writes answered 202: the command can conflict with the aggregate's state or a
  concurrent writer;
- 413 and 415 where there is a body (too large, not JSON);
- 429 where the view is throttled;
- 503 on reads that wait for the projection (`ReadsYourWrites`), with both parameters.

A view adds what the rules cannot know (say 429 on a rate-limited write) with
`extend_schema(responses={429: RATE_LIMITED})`; `links` declares OpenAPI links.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from platform_core.eventsourcing.eventstore import LOG_POSITION_PATTERN
from platform_core.web.fields import StrictCharField, StrictDecimalField
from platform_core.web.read_your_writes import (
    MIN_POSITION_HEADER,
    MIN_POSITION_PARAM,
    ReadsYourWrites,
)
from platform_core.web.serializers import StrictSerializer

F = TypeVar("F", bound=Callable[..., Any])

# DRF's CharField refuses NUL characters, and blank strings unless allow_blank (it trims
# first, so a string of spaces is blank too). drf-spectacular offers a blank field's ""
# as a `oneOf` branch of its own, so NO_NUL must not match "" as well.
NO_NUL = "^[^\\u0000]+$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """Every error answer: `{"error": {"code", "message", "details"?}}`."""

    @extend_schema_serializer(component_name="ErrorBody")
    class BodySerializer(serializers.Serializer):
        code = serializers.CharField(help_text="For programs: `invalid`, `not_found`, …")
        message = serializers.CharField(help_text="For people.")
        details = serializers.JSONField(
            required=False, help_text="Validation errors: what is wrong, field by field."
        )

    error = BodySerializer()


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}}
ERRORS: dict[int, str] = {
    400: "The request is not valid (`details` says why).",
    401: "No credentials, or credentials that are not valid.",
    403: "Not allowed for this user (or a session write without its CSRF token).",
    404: "No such resource (or not one this user may see).",
    406: "The `Accept` header rules out JSON, the only type answered.",
    409: "Conflicts with the resource's state, or with a concurrent change.",
    413: "The body is too large.",
    415: "The body is not JSON.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    503: "The read model has not caught up with the position asked for; retry shortly.",
}
RATE_LIMITED = OpenApiResponse(ErrorSerializer, ERRORS[429])

READ_YOUR_WRITES = (
    OpenApiParameter(
        MIN_POSITION_PARAM,
        str,
        pattern=LOG_POSITION_PATTERN,
        description=(
            "Read your writes: a write's `X-Log-Position`. The answer waits until the read "
            "model shows that write (503 with Retry-After if it takes too long)."
        ),
    ),
    OpenApiParameter(
        MIN_POSITION_HEADER,
        str,
        OpenApiParameter.HEADER,
        pattern=LOG_POSITION_PATTERN,
        description=f"The same as `{MIN_POSITION_PARAM}`, as a header.",
    ),
)


def links(status: int, **named: dict[str, Any]) -> Callable[[F], F]:
    """OpenAPI links on a view method's `status` answer: name -> `{"operationId",
    "parameters"}` (runtime expressions such as `$response.body#/id`)."""

    def decorate(method: F) -> F:
        method._openapi_links = {str(status): named}  # type: ignore[attr-defined]
        return method

    return decorate


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema with the platform's error answers (module docstring)."""

    def get_description(self) -> str:  # type: ignore[override]
        # A view merged by route_by_method has every part's docstring; say the method's.
        owner = _defining_class(type(self.view), self.method.lower())
        method_doc = get_doc(getattr(self.view, self.method.lower(), None))
        return method_doc or (get_doc(owner) if owner else super().get_description())

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if self._reads_your_writes():
            parameters.extend(READ_YOUR_WRITES)
        return parameters

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status in self.error_statuses(responses):
            response = OpenApiResponse(ErrorSerializer, ERRORS[status])
            responses.setdefault(str(status), self._get_response_for_code(response, str(status)))
            if status in (429, 503):
                responses[str(status)].setdefault("headers", _RETRY_AFTER)
        method = getattr(self.view, self.method.lower(), None)
        for status, named in getattr(method, "_openapi_links", {}).items():
            responses[status]["links"] = named
        return responses

    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        """A strict serializer refuses fields it does not know: the schema says so."""
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        if isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
        return schema

    def error_statuses(self, responses: dict[str, Any]) -> list[int]:
        """The error statuses the platform answers for this operation (module docstring)."""
        view = self.view
        has_body = self._get_request_body() is not None
        rules = {
            400: has_body or bool(self.get_override_parameters()),
            401: bool(view.get_authenticators()),
            403: self._checks_roles() or (self._is_write() and self._has_session_auth()),
            404: "{" in self.path or self._is_paginated_list(),
            406: True,
            409: "202" in responses,
            413: has_body,
            415: has_body,
            429: bool(view.get_throttles()),
            503: self._reads_your_writes(),
        }
        return [status for status, applies in rules.items() if applies]

    def _reads_your_writes(self) -> bool:
        return isinstance(self.view, ReadsYourWrites) and self.view.waits_on(self.method)

    def _is_write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    def _checks_roles(self) -> bool:
        return any(
            not isinstance(permission, (AllowAny, IsAuthenticated))
            for permission in self.view.get_permissions()
        )

    def _has_session_auth(self) -> bool:
        return any(isinstance(a, SessionAuthentication) for a in self.view.get_authenticators())

    def _is_paginated_list(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None


def _defining_class(view: type, method: str) -> type | None:
    return next((cls for cls in view.__mro__ if method in vars(cls)), None)


class StrictCharFieldExtension(OpenApiSerializerFieldExtension):
    """No NUL, and not blank unless allowed: what DRF's CharField refuses, in the schema."""

    target_class = StrictCharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        if self.target.allow_blank:
            schema.setdefault("pattern", NO_NUL)
        else:
            # Untrimmed, only "" is blank.
            schema.setdefault("pattern", NOT_BLANK if self.target.trim_whitespace else NO_NUL)
            schema.setdefault("minLength", 1)
        return schema


class ListSerializerExtension(OpenApiSerializerFieldExtension):
    """A list's `allow_empty`, `min_length` and `max_length` (drf-spectacular leaves them out)."""

    target_class = serializers.ListSerializer
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        least = max(self.target.min_length or 0, 0 if self.target.allow_empty else 1)
        if least:
            schema["minItems"] = least
        if self.target.max_length is not None:
            schema["maxItems"] = self.target.max_length
        return schema


class StrictDecimalFieldExtension(OpenApiSerializerFieldExtension):
    """The field's own pattern, which is its whole rule (DRF's says any decimal string)."""

    target_class = StrictDecimalField

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_serializer_field(
            self.target, direction, bypass_extensions=True
        )
        return {**schema, "pattern": self.target.pattern}

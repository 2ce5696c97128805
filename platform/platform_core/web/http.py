"""HTTP edges of the platform: correlation ids, JSON errors, dispatching commands."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from platform_core.eventsourcing.bus import CommandBus, CommandOutcome
from platform_core.eventsourcing.errors import Conflict, DomainError, InvalidCommand, NotFound
from platform_core.eventsourcing.eventstore import ConcurrencyError
from platform_core.eventsourcing.messages import (
    MessageContext,
    clean_correlation_id,
    current_context,
    message_context,
    new_correlation_id,
)

logger = logging.getLogger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
POSITION_HEADER = "X-Log-Position"


class CorrelationIdMiddleware:
    """Takes `X-Correlation-ID` from the request (or starts one) and returns it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = clean_correlation_id(request.headers.get(CORRELATION_HEADER))
        context = MessageContext(correlation_id=incoming or new_correlation_id())
        with message_context(context):
            response = self.get_response(request)
        response[CORRELATION_HEADER] = context.correlation_id
        return response


class RequestSizeLimitMiddleware:
    """Refuses a body larger than DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length.isdigit() and int(length) > limit:
            return JsonResponse(
                {
                    "error": {
                        "code": "request_too_large",
                        "message": f"The body exceeds {limit} bytes.",
                    }
                },
                status=413,
            )
        return self.get_response(request)


def dispatch_command(request: Request, bus: CommandBus, command: Any) -> CommandOutcome:
    """Handle `command` on behalf of the request's user, in the request's correlation."""
    context = current_context() or MessageContext(correlation_id=new_correlation_id())
    user = request.user
    actor = f"user:{user.pk}" if user.is_authenticated else "anonymous"
    return bus.handle(
        command,
        context=MessageContext(
            correlation_id=context.correlation_id, actor=actor, tenant=context.tenant
        ),
    )


def accepted(
    body: dict[str, Any], outcome: CommandOutcome, location: str | None = None
) -> Response:
    """202 with the log position the command wrote, for read-your-writes."""
    headers = {"Location": location} if location else {}
    if outcome.last_position is not None:
        headers[POSITION_HEADER] = str(outcome.last_position)
        body = {**body, "log_position": str(outcome.last_position)}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


_DOMAIN_STATUS = (
    (InvalidCommand, status.HTTP_400_BAD_REQUEST),
    (Conflict, status.HTTP_409_CONFLICT),
)


def _domain_status(exc: DomainError) -> int:
    return next((code for cls, code in _DOMAIN_STATUS if isinstance(exc, cls)), 400)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every API error as `{"error": {"code", "message", "details"?}}`."""
    if isinstance(exc, NotFound):
        return _error(404, "not_found", exc.message)
    if isinstance(exc, DomainError):
        return _error(_domain_status(exc), _snake(type(exc).__name__), exc.message)
    if isinstance(exc, ConcurrencyError):
        return _error(
            409,
            "concurrent_modification",
            "Someone else changed this resource at the same moment; retry the request.",
        )
    if isinstance(exc, RequestDataTooBig):
        return _error(413, "request_too_large", "The request body is too large.")
    if isinstance(exc, Http404):
        return _error(404, "not_found", "Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        code = getattr(detail["detail"], "code", None) or getattr(exc, "default_code", "error")
        response.data = {"error": {"code": code, "message": str(detail["detail"])}}
    else:
        response.data = {
            "error": {"code": "invalid", "message": "The request is not valid.", "details": detail}
        }
    return response


def _error(code: int, name: str, message: str) -> Response:
    return Response({"error": {"code": name, "message": message}}, status=code)


def json_error_view(status_code: int, code: str, message: str) -> Callable[..., HttpResponse]:
    """A Django error handler (404, 500…) answering JSON."""

    def view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        return JsonResponse({"error": {"code": code, "message": message}}, status=status_code)

    return view

"""Authentication of websocket handshakes, for Django Channels.

Browsers authenticate with the Django session cookie. A browser sends its cookies on a
websocket to our host whichever page opened it, so a session is only accepted from a page
of our own origin: the `Origin` (scheme, host and port) must be the handshake's own
(`Host`, ws -> http, wss -> https) with the host in ALLOWED_HOSTS, or be listed in
CSRF_TRUSTED_ORIGINS, as Django's CSRF check reads it. That is what stops another site's
page, or another port's, from using a visitor's session (cross-site websocket hijacking).
Other clients send `Authorization: Token <key>` (DRF authtoken) with the handshake, which
a page cannot do; they may omit Origin, but a foreign one is refused. Anything else is
refused at the handshake (HTTP 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import ParseResult, urlparse

from channels.auth import get_user  # type: ignore[import-untyped]
from channels.db import database_sync_to_async  # type: ignore[import-untyped]
from channels.security.websocket import (  # type: ignore[import-untyped]
    AllowedHostsOriginValidator,
    WebsocketDenier,
)
from channels.sessions import CookieMiddleware, SessionMiddleware  # type: ignore[import-untyped]
from django.conf import settings
from rest_framework.authtoken.models import Token

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TOKEN_KEYWORD = "token"


class WebsocketAuthMiddleware:
    """ASGI middleware: puts the authenticated user in `scope["user"]` and calls `inner`,
    or refuses the handshake (see the module docstring for the rules)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self._with_session: ASGIApp = CookieMiddleware(SessionMiddleware(self._authenticate))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError("WebsocketAuthMiddleware only serves websocket connections")
        await self._with_session(scope, receive, send)

    async def _authenticate(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = await authenticated_user(scope)
        if user is None:
            await WebsocketDenier()(scope, receive, send)
            return
        await self.inner({**scope, "user": user}, receive, send)


async def authenticated_user(scope: Scope) -> Any | None:
    """The active user a handshake authenticates, or None. `scope` needs `headers` and,
    for session authentication, `session` (channels' SessionMiddleware)."""
    origin = _header(scope, b"origin")
    authorization = _header(scope, b"authorization")
    if authorization is not None:
        if origin is not None and not _allowed_origin(origin, scope):
            return None
        return await _token_user(authorization)
    if origin is None or not _allowed_origin(origin, scope):
        return None
    user = await get_user(scope)
    return user if user.is_authenticated and user.is_active else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _allowed_origin(origin: str, scope: Scope) -> bool:
    parsed: ParseResult = urlparse(origin)
    if _normal(parsed.scheme, parsed.netloc) in {
        _normal(trusted.scheme, trusted.netloc)
        for trusted in map(urlparse, settings.CSRF_TRUSTED_ORIGINS)
    }:
        return True
    host = _header(scope, b"host")
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    if host is None or _normal(parsed.scheme, parsed.netloc) != _normal(scheme, host):
        return False
    # Built per handshake so that ALLOWED_HOSTS is read as it is now.
    return bool(AllowedHostsOriginValidator(None).valid_origin(parsed))


def _normal(scheme: str, netloc: str) -> tuple[str, str, int | None]:
    """An origin as (scheme, host, port), the scheme's default port filled in."""
    parsed = urlparse(f"{scheme}://{netloc}")
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is no number
        return (scheme, netloc, -1)
    return (scheme, (parsed.hostname or "").lower(), port)


@database_sync_to_async  # type: ignore[untyped-decorator]
def _token_user(authorization: str) -> Any | None:
    keyword, _, key = authorization.strip().partition(" ")
    if keyword.lower() != _TOKEN_KEYWORD or not key.strip():
        return None
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    if token is None or not token.user.is_active:
        return None
    return token.user

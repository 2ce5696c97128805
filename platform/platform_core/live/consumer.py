"""The base of websocket consumers that push read-model changes (see platform_core.live.broadcast).

A connection joins its channel-layer groups, then (when resuming with `?after=<position>`)
receives every row it may see that changed after that position, oldest first, then live
updates. Frames are whole rows with their log position, so a duplicate is harmless and a
client only has to keep the highest position it has seen to resume after a disconnect.

Close codes: 4400 an invalid `after`, 4008 the client fell too far behind (reconnect with
the last position seen), 4009 an incoming frame too large, 4011 a server error. The last
two mirror RFC 6455's 1009 and 1011, which Daphne (autobahn) does not let an application
send: it only accepts 1000 and 3000-4999. A connection the subclass does not authorize is
refused at the handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async  # type: ignore[import-untyped]
from channels.generic.websocket import AsyncWebsocketConsumer  # type: ignore[import-untyped]
from django.conf import settings

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.live.broadcast import (
    CoalescingBuffer,
    LiveUpdate,
    consumer_connected,
    consumer_disconnected,
)

logger = logging.getLogger(__name__)

INVALID_POSITION = 4400
TOO_FAR_BEHIND = 4008
MESSAGE_TOO_BIG = 4009
SERVER_ERROR = 4011
BACKLOG_PAGE = 200
PONG = json.dumps({"type": "pong"})


class LiveConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Pushes `LiveUpdate`s from channel-layer groups to one websocket client.

    Subclasses implement `authorize` (the groups to join, or None to refuse), `may_see`
    and `backlog`; `snapshot_on_connect` sends the backlog even without `?after=`.
    Updates wait in a per-connection `CoalescingBuffer` (setting WEBSOCKET_BUFFER_LIMIT)
    drained by one sender task; a client whose buffer overflows is closed with 4008.
    """

    snapshot_on_connect = False

    async def authorize(self) -> list[str] | None:
        """The groups this connection joins, or None to refuse it."""
        raise NotImplementedError

    def may_see(self, update: LiveUpdate) -> bool:
        """Whether this connection's user may see `update`."""
        raise NotImplementedError

    def backlog(self, after: LogPosition | None, limit: int) -> list[LiveUpdate]:
        """Up to `limit` visible rows changed after `after` (all when None), oldest first.
        Runs in a thread: it may query the database."""
        raise NotImplementedError

    async def connect(self) -> None:
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        user = self.scope.get("user")
        groups = await self.authorize() if user and user.is_authenticated else None
        if groups is None:
            await self.close()
            return
        try:
            after = _resume_position(self.scope)
        except ValueError:
            await self.accept()
            await self._shut(INVALID_POSITION, "after must be a log position: <tx>.<pos>")
            return
        self._pending = CoalescingBuffer(getattr(settings, "WEBSOCKET_BUFFER_LIMIT", 1000))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups = groups  # the base class leaves them on disconnect
        self._loop = asyncio.get_running_loop()
        consumer_connected(self._loop)
        await self.accept()
        self._sender = asyncio.create_task(self._send_updates(after))

    async def disconnect(self, code: int) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            consumer_disconnected(self._loop)

    async def live_update(self, message: dict[str, Any]) -> None:
        update = LiveUpdate.from_message(message)
        if self._closing or not self.may_see(update):
            return
        if not self._pending.offer(update):
            await self._shut(
                TOO_FAR_BEHIND,
                f"more than {self._pending.limit} updates pending: "
                "reconnect with ?after=<the last position you received>",
            )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > getattr(settings, "WEBSOCKET_MAX_INCOMING_BYTES", 4096):
            await self._shut(MESSAGE_TOO_BIG, "frame too large")
        elif text_data is not None and _is_ping(text_data):
            await self.send(text_data=PONG)

    async def _send_updates(self, after: LogPosition | None) -> None:
        try:
            if after is not None or self.snapshot_on_connect:
                await self._send_backlog(after)
            while True:
                update = await self._pending.take()
                await self.send(text_data=update.frame)
        except Exception:
            logger.exception("live updates failed on %s", self.scope.get("path"))
            await self._shut(SERVER_ERROR, "server error", cancel_sender=False)

    async def _send_backlog(self, after: LogPosition | None) -> None:
        while True:
            page = await database_sync_to_async(self.backlog)(after, BACKLOG_PAGE)
            for update in page:
                await self.send(text_data=update.frame)
                # A live update for this row waiting meanwhile is a duplicate unless newer.
                self._pending.discard(update.key, update.position)
            if len(page) < BACKLOG_PAGE:
                return
            after = page[-1].position

    async def _shut(self, code: int, reason: str, *, cancel_sender: bool = True) -> None:
        if self._closing:
            return
        self._closing = True
        if cancel_sender and self._sender is not None:
            # It may be stuck sending to this very client; the rest is dropped anyway.
            self._sender.cancel()
        await self.close(code=code, reason=reason)


def _resume_position(scope: dict[str, Any]) -> LogPosition | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if "after" not in values:
        return None
    return LogPosition.parse(values["after"][-1])


def _is_ping(text: str) -> bool:
    try:
        message = json.loads(text)
    except ValueError:
        return False
    return isinstance(message, dict) and message.get("type") == "ping"

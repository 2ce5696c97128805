"""Live updates: read-model changes pushed to websocket clients through a channel layer.

A projector thread sends each changed row to channel-layer groups with
`group_send_from_thread`; consumers built on `platform_core.live.consumer.LiveConsumer`
forward them to their clients. A row travels as a `LiveUpdate`: its key, the log position
of the last event applied to it, and the frame (JSON text) clients receive, encoded once
by the sender rather than once per connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER  # type: ignore[import-untyped]
from channels.layers import (  # type: ignore[import-untyped]
    InMemoryChannelLayer,
    get_channel_layer,
)

from platform_core.eventsourcing.eventstore import LogPosition

# The channel-layer message type; consumers handle it in `live_update`.
UPDATE_MESSAGE = "live.update"


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveUpdate:
    """One changed read-model row as websocket clients see it.

    `owner` says who may see the row (for orders, the customer's id); consumers check it,
    so a misrouted message never reaches a client it is not meant for.
    """

    key: str
    position: LogPosition
    frame: str
    owner: int | str | None = None

    def to_message(self) -> dict[str, Any]:
        """The channel-layer message carrying this update (JSON/msgpack-safe values only)."""
        return {
            "type": UPDATE_MESSAGE,
            "key": self.key,
            "position": str(self.position),
            "frame": self.frame,
            "owner": self.owner,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> LiveUpdate:
        return cls(
            key=message["key"],
            position=LogPosition.parse(message["position"]),
            frame=message["frame"],
            owner=message["owner"],
        )


class CoalescingBuffer:
    """Updates waiting to be sent on one connection: one per key, the latest position wins.

    Updates leave in the order of their positions (given they arrive in that order, as a
    projector sends them), so a client that has seen position P has been sent every
    earlier change; that is what makes resuming from the highest position seen safe. Its
    size is the number of distinct keys, so repeated changes to one row cost nothing;
    `offer` says when it has grown past `limit`.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: dict[str, LiveUpdate] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def offer(self, update: LiveUpdate) -> bool:
        """Keep `update` unless a newer one for its key waits; False once over the limit."""
        waiting = self._pending.get(update.key)
        if waiting is None or waiting.position < update.position:
            # Re-inserted at the end: it now sorts after every other waiting update.
            self._pending.pop(update.key, None)
            self._pending[update.key] = update
        self._ready.set()
        return len(self._pending) <= self.limit

    def discard(self, key: str, sent: LogPosition) -> None:
        """Forget the update waiting for `key` if it is no newer than one already sent."""
        waiting = self._pending.get(key)
        if waiting is not None and waiting.position <= sent:
            del self._pending[key]

    async def take(self) -> LiveUpdate:
        """The oldest waiting update, waiting for one if there is none."""
        while not self._pending:
            self._ready.clear()
            await self._ready.wait()
        return self._pending.pop(next(iter(self._pending)))


class _SenderLoop:
    """One event loop in a thread of its own for sends from synchronous code.

    A network layer (Redis) keeps its connections per event loop: sending through a new
    loop each time (`async_to_sync` from a thread without one) would connect anew for
    every projector batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="live-updates-sender", daemon=True
                ).start()
            return self._loop


_sender_loop = _SenderLoop()


class _ConsumerLoops:
    """The event loops serving live consumers in this process, with how many each serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[asyncio.AbstractEventLoop, int] = {}

    def enter(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._serving[loop] = self._serving.get(loop, 0) + 1

    def leave(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            remaining = self._serving.pop(loop, 0) - 1
            if remaining > 0:
                self._serving[loop] = remaining

    def current(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            for loop in [loop for loop in self._serving if loop.is_closed()]:
                del self._serving[loop]
            return next(reversed(self._serving), None)


_consumer_loops = _ConsumerLoops()


def consumer_connected(loop: asyncio.AbstractEventLoop) -> None:
    """Record that a live consumer runs on `loop` (see `group_send_from_thread`)."""
    _consumer_loops.enter(loop)


def consumer_disconnected(loop: asyncio.AbstractEventLoop) -> None:
    """Undo one `consumer_connected(loop)`."""
    _consumer_loops.leave(loop)


def group_send_from_thread(
    messages: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    alias: str = DEFAULT_CHANNEL_LAYER,
    timeout: float = 5.0,
) -> None:
    """Send `(group, message)` pairs through the channel layer from synchronous code in a
    thread without a running event loop (a projector thread), waiting until they are sent.

    The in-memory layer keeps asyncio queues, which are not thread-safe: its sends run on
    the event loop the consumers of this process run on, and when no consumer is connected
    there is nobody to tell. Other layers (Redis) send from one long-lived loop of their
    own (`_SenderLoop`).
    """
    layer = get_channel_layer(alias)
    if layer is None or not messages:
        return
    if isinstance(layer, InMemoryChannelLayer):
        loop = _consumer_loops.current()
        if loop is None:
            return
    else:
        loop = _sender_loop.get()
    if _running_loop() is loop:
        raise RuntimeError("group_send_from_thread called on the consumers' event loop")
    future = asyncio.run_coroutine_threadsafe(_send_all(layer, messages), loop)
    try:
        future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


async def _send_all(layer: Any, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    for group, message in messages:
        await layer.group_send(group, dict(message))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

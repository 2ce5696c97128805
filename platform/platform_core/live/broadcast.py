"""Live updates: read-model changes pushed to websocket clients through a channel layer.

A projector thread asks which groups have listeners (`listened_groups_from_thread`), then
sends each changed row to those groups with `group_send_from_thread`; consumers built on
`platform_core.live.consumer.LiveConsumer` forward them to their clients. A row travels
as a `LiveUpdate`: its key, the log position of the last event applied to it, and the
frame (JSON text) clients receive, encoded once by the sender rather than once per
connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from channels import DEFAULT_CHANNEL_LAYER  # type: ignore[import-untyped]
from channels.layers import (  # type: ignore[import-untyped]
    InMemoryChannelLayer,
    get_channel_layer,
)

from platform_core.eventsourcing.eventstore import LogPosition
from platform_core.live.pubsub import PubSubChannelLayer

T = TypeVar("T")

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


def listened_groups_from_thread(
    groups: Collection[str],
    *,
    alias: str = DEFAULT_CHANNEL_LAYER,
    timeout: float = 5.0,
) -> set[str]:
    """Which of `groups` some connection has joined, asked from a thread without a running
    event loop (like `group_send_from_thread`), so that a sender leaves out messages, and
    the work of building them, for groups nobody listens to.

    Leaving a group out is safe for a sender that asks after its changes committed: a
    connection joins its groups before it reads what changed (`LiveConsumer`), so one that
    joins after this answer finds those changes in the database. A layer that cannot tell
    (the list-based Redis layer) answers every group.
    """
    layer = get_channel_layer(alias)
    if layer is None or not groups:
        return set()
    loop = _loop_for(layer)
    if loop is None:
        return set()
    return _run_on(loop, _listened(layer, groups), timeout)


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
    own (`_SenderLoop`); the deployment's `PubSubChannelLayer` sends them all as one
    pipeline.
    """
    layer = get_channel_layer(alias)
    if layer is None or not messages:
        return
    loop = _loop_for(layer)
    if loop is not None:
        _run_on(loop, _send_all(layer, messages), timeout)


def _loop_for(layer: Any) -> asyncio.AbstractEventLoop | None:
    """The loop to use `layer` on from a thread: None when nobody could be listening."""
    if isinstance(layer, InMemoryChannelLayer):
        return _consumer_loops.current()
    return _sender_loop.get()


def _run_on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, T], timeout: float) -> T:
    if _running_loop() is loop:
        work.close()
        raise RuntimeError("a *_from_thread function called on the consumers' event loop")
    future = asyncio.run_coroutine_threadsafe(work, loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise


async def _listened(layer: Any, groups: Collection[str]) -> set[str]:
    if isinstance(layer, InMemoryChannelLayer):
        return {group for group in groups if layer.groups.get(group)}
    if isinstance(layer, PubSubChannelLayer):
        return await layer.listened(groups)
    return set(groups)


async def _send_all(layer: Any, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    if isinstance(layer, PubSubChannelLayer):
        await layer.group_send_many(messages)
        return
    for group, message in messages:
        await layer.group_send(group, dict(message))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

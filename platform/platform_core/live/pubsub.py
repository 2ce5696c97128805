"""The deployment's channel layer: channels_redis's pub/sub layer plus two batch operations
for a sender with many messages at once (the projector after a batch).

A projector batch changes hundreds of rows, and each goes to several groups. Through
`group_send` that is one PUBLISH round trip a group and a row; here it is one PUBSUB
NUMSUB for all of a batch's groups (so rows nobody listens to are not even encoded) and one
pipeline of PUBLISHes, per Redis shard. Messages stay in the same order on the wire, so a
subscriber receives them in the order they were given.

The group's channel name, its shard and the shard's Redis client are the parent layer's
own (channels_redis 4.x), so a consumer that joined a group through this layer receives
what `group_send_many` publishes (`tests/platform_core/live/test_pubsub_layer.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer  # type: ignore[import-untyped]

# Commands per pipeline or NUMSUB: bounds a request's size whatever the batch.
CHUNK = 1000


class PubSubChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """`channels_redis.pubsub.RedisPubSubChannelLayer` with `listened` and
    `group_send_many`; configured like it (`hosts`, `prefix`)."""

    async def listened(self, groups: Collection[str]) -> set[str]:
        """The groups among `groups` that some connection, in any process, has joined."""
        found: set[str] = set()
        for shard, named in self._by_shard((group, group) for group in groups).items():
            redis = _client(shard)
            for chunk in _chunks(named):
                counts = await redis.pubsub_numsub(*(channel for channel, _ in chunk))
                found.update(
                    group for (_, group), (_, count) in zip(chunk, counts, strict=True) if count
                )
        return found

    async def group_send_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """`group_send` of each (group, message) in turn, as one pipeline per shard."""
        payloads = ((group, self.serialize(dict(message))) for group, message in messages)
        for shard, named in self._by_shard(payloads).items():
            redis = _client(shard)
            for chunk in _chunks(named):
                pipeline = redis.pipeline(transaction=False)
                for channel, payload in chunk:
                    pipeline.publish(channel, payload)
                await pipeline.execute()

    def _by_shard(self, items: Iterable[tuple[str, Any]]) -> dict[Any, list[tuple[str, Any]]]:
        """(group, value) pairs as (group channel, value) pairs per shard, in order."""
        layer = self._get_layer()  # the per-event-loop layer holding the connections
        by_shard: dict[Any, list[tuple[str, Any]]] = {}
        for group, value in items:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, value))
        return by_shard


def _client(shard: Any) -> Any:
    shard._ensure_redis()
    return shard._redis


def _chunks(items: list[tuple[str, Any]]) -> Iterable[list[tuple[str, Any]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]

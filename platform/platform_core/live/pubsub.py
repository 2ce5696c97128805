"""The deployment's channel layer: channels_redis's pub/sub layer plus two batch operations
for a sender with many messages at once (the projector after a batch).

A projector batch changes hundreds of rows, and each goes to several groups. Through
`group_send` that is one PUBLISH round trip a group and a row; here it is one PUBSUB
NUMSUB per Redis shard for all of a batch's groups (so rows nobody listens to are not even
encoded), and a pipeline of PUBLISHes for each run of messages to one shard (one pipeline
with one host, as deployed), the runs one after the other: messages leave in the order
given. With one host a subscriber receives them in that order; across shards it reads each
shard's connection on its own, as with `group_send`.

The group's channel name, its shard and the shard's Redis client are the parent layer's
own (channels_redis 4.3, pinned), so a consumer that joined a group through this layer
receives what `group_send_many` publishes (`tests/platform_core/live/test_live_pushes.py`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
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
        for shard, named in self._by_shard(groups).items():
            redis = _client(shard)
            for chunk in _chunks(named):
                counts = await redis.pubsub_numsub(*(channel for channel, _ in chunk))
                found.update(
                    group for (_, group), (_, count) in zip(chunk, counts, strict=True) if count
                )
        return found

    async def group_send_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """`group_send` of each (group, message) in turn: a pipeline for each run of
        messages to one shard, one run after the other, so that they keep their order."""
        layer = self._get_layer()  # the per-event-loop layer holding the connections
        runs: list[tuple[Any, list[tuple[str, bytes]]]] = []
        for group, message in messages:
            channel = layer._get_group_channel_name(group)
            shard = layer._get_shard(channel)
            if not runs or runs[-1][0] is not shard:
                runs.append((shard, []))
            runs[-1][1].append((channel, self.serialize(dict(message))))
        for shard, run in runs:
            redis = _client(shard)
            for chunk in _chunks(run):
                pipeline = redis.pipeline(transaction=False)
                for channel, payload in chunk:
                    pipeline.publish(channel, payload)
                await pipeline.execute()

    def _by_shard(self, groups: Iterable[str]) -> dict[Any, list[tuple[str, str]]]:
        """(group channel, group) pairs per shard."""
        layer = self._get_layer()
        by_shard: dict[Any, list[tuple[str, str]]] = {}
        for group in groups:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, group))
        return by_shard


def _client(shard: Any) -> Any:
    shard._ensure_redis()
    return shard._redis


def _chunks(items: list[tuple[str, Any]]) -> Iterator[list[tuple[str, Any]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]

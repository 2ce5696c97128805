"""The embedded transport: outbox batches handed to in-process consumer groups."""

from __future__ import annotations

from collections.abc import Sequence

from platform_core.messaging.consumers import ConsumerGroup
from platform_core.messaging.envelope import Outgoing, PublishReport


class LocalPublisher:
    """The embedded transport: hands outbox batches straight to in-process consumer
    groups, with the same inbox and dead-letter handling as over Kafka."""

    def __init__(self, groups: Sequence[ConsumerGroup]) -> None:
        self._groups = list(groups)

    def publish(self, batch: Sequence[Outgoing]) -> PublishReport:
        for group in self._groups:
            wanted = [o.envelope for o in batch if o.envelope.topic in group.topics]
            if wanted:
                group.handle_batch(wanted)
        return PublishReport(delivered=[o.row_id for o in batch])

    def close(self) -> None:
        pass

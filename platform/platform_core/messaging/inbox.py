"""The inbox: which messages a consumer has processed, claimed in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from platform_core.storage.backends import backend


def claim(consumer: str, message_ids: Sequence[str]) -> set[str]:
    """Insert inbox rows for `message_ids`; the ids that were not there before."""
    if not message_ids:
        return set()
    return backend().claim_inbox(consumer, message_ids, datetime.now(UTC))

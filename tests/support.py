"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from platform_core.models import StoredEvent


def stored_events() -> int:
    """How many events the store holds, whatever the log's read horizon."""
    return StoredEvent.objects.count()

"""Fixtures of the end-to-end tests that run the whole system in one process."""

from __future__ import annotations

import pytest

from tests.e2e.fulfillment_support import eager_commands, register, settle


@pytest.fixture
def shop(platform_runtime):  # type: ignore[no-untyped-def]
    """The runtime with Celery commands run eagerly and 10 TEA in stock."""
    with eager_commands():
        register(platform_runtime, "TEA", stock=10)
        settle(platform_runtime)
        yield platform_runtime

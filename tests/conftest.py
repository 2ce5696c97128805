"""Shared fixtures. Tests that need a service carry a marker (postgres, redis, rabbitmq,
browser for Chromium); without the service in the environment they are skipped with the
reason in the run's summary. CI sets every service, so nothing is skipped there."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from inventory.commands import RegisterProduct
from platform_core.runtime import Runtime, reset_runtime, runtime
from tests.support import catch_up_fully


def _is_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def _chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = {
        "postgres": None if _is_postgres() else "needs PostgreSQL: set DATABASE_URL=postgres://…",
        "redis": None if os.environ.get("REDIS_URL") else "needs Redis: set REDIS_URL=redis://…",
        "rabbitmq": None
        if settings.CELERY_BROKER_URL.startswith("amqp")
        else "needs RabbitMQ: set CELERY_BROKER_URL=amqp://…",
        "browser": None
        if os.access(_chromium_path(), os.X_OK)
        else f"needs Chromium at {_chromium_path()}: apt-get install chromium or set CHROMIUM_PATH",
    }
    for item in items:
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def platform_runtime() -> Iterator[Runtime]:
    """The application's runtime (bus, store, codec, projections), built fresh."""
    reset_runtime()
    yield runtime()
    reset_runtime()


@pytest.fixture
def project(platform_runtime: Runtime) -> Callable[[], None]:
    """Run every projection until it has read every stored event.

    On PostgreSQL the log shows an event only once every older transaction on the server
    has ended, so on a busy server one catch-up can stop short; this keeps catching up
    (for at most 10 s) until every checkpoint reaches the newest stored event.
    """
    return lambda: catch_up_fully(platform_runtime.projections)


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> None:
    """Hashing test users' passwords with PBKDF2 dominates set-up time otherwise."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_order_rate_limit(settings) -> None:  # type: ignore[no-untyped-def]
    """Tests place orders as fast as they like; the throttle's own tests set a rate."""
    settings.ORDER_RATE_LIMIT = None


@pytest.fixture
def staff_user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("staff", password="staff-pass-123", is_staff=True)


@pytest.fixture
def customer(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("alice", password="alice-pass-123")


@pytest.fixture
def other_customer(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("bob", password="bob-pass-123")


def _client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient(SERVER_NAME="localhost")
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous_client() -> APIClient:
    return _client_for(None)


@pytest.fixture
def staff_client(staff_user) -> APIClient:  # type: ignore[no-untyped-def]
    return _client_for(staff_user)


@pytest.fixture
def customer_client(customer) -> APIClient:  # type: ignore[no-untyped-def]
    return _client_for(customer)


@pytest.fixture
def other_client(other_customer) -> APIClient:  # type: ignore[no-untyped-def]
    return _client_for(other_customer)


@pytest.fixture
def catalog(platform_runtime: Runtime, project: Callable[[], None]) -> None:
    """Two products in the read model (100 in stock each), so orders can be priced."""
    for sku, name, price in (("MUG-1", "Mug", "7.50"), ("TEA-2", "Green tea", "3.99")):
        platform_runtime.bus.handle(
            RegisterProduct(sku=sku, name=name, price=Decimal(price), initial_stock=100)
        )
    project()


@pytest.fixture
def in_memory_channel_layer(settings):  # type: ignore[no-untyped-def]
    """The embedded default's channel layer, whatever REDIS_URL says."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

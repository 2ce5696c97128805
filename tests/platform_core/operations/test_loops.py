"""Stalled loops in `/metrics` and `/readyz` (`operations.loops`): a loop is stalled when
none of its processes has finished a good round for LOOP_STALL_SECONDS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from platform_core.models import LoopHeartbeat
from platform_core.operations.loops import loop_health

pytestmark = pytest.mark.django_db(transaction=True)

SCRAPER = {"HTTP_AUTHORIZATION": "Bearer scrape-secret"}


@pytest.fixture(autouse=True)
def stall_after(settings):
    settings.LOOP_STALL_SECONDS = 30
    settings.METRICS_TOKEN = "scrape-secret"


def beat(loop: str, instance: str, seconds_ago: float, error: str = "") -> None:
    at = timezone.now() - timedelta(seconds=seconds_ago)
    LoopHeartbeat.objects.create(
        loop=loop,
        instance=instance,
        beat_at=at,
        failing_since=at if error else None,
        last_error=error,
    )


@pytest.fixture
def loops() -> None:
    beat("relay", "host:1", 600, "OperationalError: the connection is lost")  # killed long ago
    beat("relay", "host:2", 1)  # its replacement
    beat("projector", "host:3", 45, "OperationalError: the connection is lost")
    beat("consumer:orders", "host:4", 2)


def test_a_loop_is_judged_by_its_freshest_process(loops: None) -> None:
    now = timezone.now()
    health = {h.loop: h for h in loop_health(now)}

    assert {loop: h.stalled for loop, h in health.items()} == {
        "relay": False,
        "projector": True,
        "consumer:orders": False,
    }
    assert (health["relay"].instances, health["relay"].failing_since) == (1, None)
    assert health["projector"].last_error == "OperationalError: the connection is lost"
    assert health["projector"].seconds_since_progress >= 45

    assert all(h.stalled for h in loop_health(now + timedelta(seconds=31)))


def test_metrics_name_the_stalled_loop(loops: None, anonymous_client) -> None:
    text = anonymous_client.get("/metrics", **SCRAPER).content.decode()

    assert 'loop_stalled{loop="projector"} 1.0' in text
    assert 'loop_stalled{loop="relay"} 0.0' in text
    assert 'loop_stalled{loop="consumer:orders"} 0.0' in text


def test_readyz_says_degraded_without_taking_the_web_out_of_service(
    loops: None, anonymous_client
) -> None:
    answer = anonymous_client.get("/readyz")

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["loops"]["projector"]["stalled"] is True
    assert body["loops"]["projector"]["failing"] is True
    assert body["loops"]["relay"] == {
        "stalled": False,
        "seconds_since_progress": body["loops"]["relay"]["seconds_since_progress"],
        "instances": 1,
        "failing": False,
    }
    assert "connection is lost" not in answer.content.decode(), "errors stay private"


def test_readyz_is_ok_when_every_loop_makes_progress(anonymous_client) -> None:
    beat("projector", "host:3", 1)

    assert anonymous_client.get("/readyz").json()["status"] == "ok"

"""`/metrics`: what an operator alerts on, read from the database at scrape time.

Only a scraper with the credential may read it: `Authorization: Bearer <METRICS_TOKEN>`.
Without METRICS_TOKEN set it answers only while DEBUG is on (the embedded default).

Outbox backlog, pending dead letters, each projection's lag behind the log head, saga
instances by status, and whether each long-running loop makes progress (`loops`), in the
Prometheus text format.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from platform_core.commands.command_outbox import COMMAND_TOPIC
from platform_core.models import DeadLetter, OutboxMessage, ProjectionCheckpoint, SagaInstance
from platform_core.operations.loops import loop_health
from platform_core.projections.projector import LAG_CAP, ProjectionRunner
from platform_core.web.http import json_error_view


class PlatformCollector(Collector):
    def __init__(self, projections: ProjectionRunner) -> None:
        self._projections = projections

    def collect(self) -> Iterator[Metric]:
        backlog = GaugeMetricFamily(
            "outbox_backlog",
            "Outbox messages not yet acknowledged by the broker (Kafka for events, "
            "RabbitMQ for commands)",
            labels=["kind"],
        )
        waiting = OutboxMessage.objects.filter(published_at__isnull=True)
        commands = waiting.filter(topic__startswith=COMMAND_TOPIC).count()
        backlog.add_metric(["command"], commands)
        backlog.add_metric(["event"], waiting.count() - commands)
        yield backlog
        letters = GaugeMetricFamily(
            "dead_letters_pending", "Dead letters waiting for a retry or purge", labels=["source"]
        )
        pending = DeadLetter.objects.filter(status=DeadLetter.Status.PENDING)
        for row in pending.values("source").annotate(n=Count("id")):
            letters.add_metric([row["source"]], row["n"])
        yield letters
        yield from _projection_metrics(self._projections)
        sagas = GaugeMetricFamily("saga_instances", "Saga instances", labels=["saga", "status"])
        for group in SagaInstance.objects.values("saga", "status").annotate(n=Count("id")):
            sagas.add_metric([group["saga"], group["status"]], group["n"])
        yield sagas
        stuck = GaugeMetricFamily(
            "saga_instances_stuck",
            "Saga instances that need a person's attention",
            labels=["saga"],
        )
        flagged = SagaInstance.objects.filter(stuck_since__isnull=False)
        for flagged_row in flagged.values("saga").annotate(n=Count("id")):
            stuck.add_metric([flagged_row["saga"]], flagged_row["n"])
        yield stuck
        yield from _loop_metrics()


def _loop_metrics() -> Iterator[Metric]:
    since = GaugeMetricFamily(
        "loop_seconds_since_progress",
        "Seconds since any process of the loop last finished a good round",
        labels=["loop"],
    )
    stalled = GaugeMetricFamily(
        "loop_stalled",
        "1 while no process of the loop has finished a good round for LOOP_STALL_SECONDS",
        labels=["loop"],
    )
    for health in loop_health():
        since.add_metric([health.loop], health.seconds_since_progress)
        stalled.add_metric([health.loop], int(health.stalled))
    yield from (since, stalled)


def metrics_view(
    projections: Callable[[], ProjectionRunner],
) -> Callable[[HttpRequest], HttpResponse]:
    """The `/metrics` view over the projections `projections()` gives at scrape time."""

    def view(request: HttpRequest) -> HttpResponse:
        refusal = _refusal(request)
        if refusal is not None:
            return refusal
        registry = CollectorRegistry()
        registry.register(PlatformCollector(projections()))
        return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return view


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        if settings.DEBUG:
            return None
        return json_error_view(403, "metrics_closed", "Set METRICS_TOKEN to scrape /metrics.")(
            request
        )
    # The scheme is case-insensitive (RFC 9110): `bearer` is as good as `Bearer`.
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        return json_error_view(401, "not_authenticated", "A scraper's bearer token is needed.")(
            request
        )
    return None


def _projection_metrics(runner: ProjectionRunner) -> Iterator[Metric]:
    events = GaugeMetricFamily(
        "projection_lag_events",
        f"Stored events a projection has not read yet (counted up to {LAG_CAP})",
        labels=["projection"],
    )
    seconds = GaugeMetricFamily(
        "projection_lag_seconds",
        "Age of the oldest event a projection has not read yet (0 when caught up)",
        labels=["projection"],
    )
    stopped = GaugeMetricFamily(
        "projection_stopped",
        "1 while a projection is stopped at an event its handler failed on",
        labels=["projection"],
    )
    failed = set(ProjectionCheckpoint.objects.exclude(error="").values_list("name", flat=True))
    for name in runner.names:
        lag = runner.lag(name)
        events.add_metric([name], lag.events)
        seconds.add_metric([name], lag.seconds)
        stopped.add_metric([name], int(name in failed))
    yield from (events, seconds, stopped)

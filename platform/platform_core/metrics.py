"""`/metrics`: what an operator alerts on, read from the database at scrape time.

Outbox backlog, pending dead letters, each projection's lag behind the log head, and
saga instances by status, in the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from platform_core.models import DeadLetter, OutboxMessage, SagaInstance, StoredEvent
from platform_core.runtime import runtime

# Counting a large lag exactly would cost a scan per scrape; past this it reads as the cap.
LAG_CAP = 100_000


class PlatformCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        rt = runtime()
        yield GaugeMetricFamily(
            "outbox_backlog",
            "Outbox messages not yet acknowledged by the broker",
            value=OutboxMessage.objects.filter(published_at__isnull=True).count(),
        )
        letters = GaugeMetricFamily(
            "dead_letters_pending", "Dead letters waiting for a retry or purge", labels=["source"]
        )
        pending = DeadLetter.objects.filter(status=DeadLetter.Status.PENDING)
        for row in pending.values("source").annotate(n=Count("id")):
            letters.add_metric([row["source"]], row["n"])
        yield letters
        lag = GaugeMetricFamily(
            "projection_lag_events",
            f"Stored events a projection has not read yet (counted up to {LAG_CAP})",
            labels=["projection"],
        )
        for name in rt.projections.names:
            checkpoint = rt.projections.checkpoint(name)
            unread = StoredEvent.objects.filter(position__gt=checkpoint.position)
            lag.add_metric([name], unread[:LAG_CAP].count())
        yield lag
        sagas = GaugeMetricFamily("saga_instances", "Saga instances", labels=["saga", "status"])
        for group in SagaInstance.objects.values("saga", "status").annotate(n=Count("id")):
            sagas.add_metric([group["saga"], group["status"]], group["n"])
        yield sagas


def metrics_view(request: HttpRequest) -> HttpResponse:
    registry = CollectorRegistry()
    registry.register(PlatformCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

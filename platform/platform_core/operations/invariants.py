"""Checks of the platform's own stores, for a system that has gone quiet
(`manage.py verify_consistency` runs them next to the domain's rules):

- `unfinished_sagas`: saga instances still running or compensating, or waiting for a person;
- `read_model_drift`: read-model rows that differ from a fresh fold of the event store;
- `unpublished_outbox`: outbox rows no broker has acknowledged;
- `repeated_effects`: a command or message that took effect twice in one stream.

Each answers a list of `Finding`s (nothing when all is well).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection, models
from django.db.models import Count
from django.db.models.fields.json import KT

from platform_core.models import OutboxMessage, SagaInstance, StoredEvent
from platform_core.projections.projector import ProjectionRunner
from platform_core.projections.read_models import quoted_columns
from platform_core.projections.rebuild import ProjectionRebuild

UNFINISHED = (SagaInstance.Status.RUNNING, SagaInstance.Status.COMPENSATING)
VERIFY_SUFFIX = "__verify"  # the shadow tables of a fold (a rebuild's are `__rebuild`)


@dataclass(frozen=True, kw_only=True, slots=True)
class Finding:
    subject: str
    why: str


def unfinished_sagas(excluding: Collection[tuple[str, str]] = ()) -> list[Finding]:
    """Saga instances not ended, or flagged for a person; `excluding` (saga, key) pairs
    the caller checks itself."""
    live = SagaInstance.objects.filter(
        models.Q(status__in=UNFINISHED) | models.Q(stuck_since__isnull=False)
    )
    skip = set(excluding)
    return [
        Finding(subject=f"saga {saga.saga} {saga.key}", why=_saga_state(saga))
        for saga in live.order_by("created_at")
        if (saga.saga, saga.key) not in skip
    ]


def _saga_state(saga: SagaInstance) -> str:
    stuck = f", needs attention: {saga.data.get('_stuck', '')}" if saga.stuck else ""
    return f"{saga.status}{stuck}"


def unpublished_outbox() -> list[Finding]:
    """Outbox rows (integration events and commands) not yet published."""
    waiting = OutboxMessage.objects.filter(published_at__isnull=True).order_by("id")
    return [
        Finding(
            subject=f"outbox row {row.pk}",
            why=f"{row.event_type} to {row.topic} not published after {row.attempts} "
            f"attempt(s){': ' + row.last_error[:200] if row.last_error else ''}",
        )
        for row in waiting
    ]


def repeated_effects() -> list[Finding]:
    """Streams holding events caused by one command or message id in more than one
    transaction. One handling of a command appends in one transaction; a redelivery the
    inbox failed to stop appends again in another. (On SQLite, where every event has
    transaction id 0, nothing can be told apart.)"""
    repeated = (
        StoredEvent.objects.annotate(cause=KT("metadata__causation_id"))
        .filter(cause__isnull=False)
        .exclude(cause="")
        .values("stream_id", "cause")
        .annotate(transactions=Count("transaction_id", distinct=True))
        .filter(transactions__gt=1)
        .order_by("stream_id", "cause")
    )
    return [
        Finding(
            subject=f"stream {row['stream_id']}",
            why=f"{row['cause']} took effect in {row['transactions']} transactions",
        )
        for row in repeated
    ]


def read_model_drift(runner: ProjectionRunner) -> list[Finding]:
    """Every read-model row that differs from a fresh fold of the whole event store, one
    finding per row (missing, extra, or which columns differ). The fold goes into shadow
    tables (`<table>__verify`) that are dropped after; the live rows and the projections'
    checkpoints are only read."""
    found: list[Finding] = []
    for name in runner.names:
        rebuild = ProjectionRebuild(runner, name, shadow_suffix=VERIFY_SUFFIX)
        with rebuild.fold() as shadows:
            for live, shadow in shadows.items():
                found += _compare(live, shadow)
    return found


def _compare(live: type[models.Model], shadow: type[models.Model]) -> list[Finding]:
    keys = _differing_keys(live, shadow)
    if not keys:
        return []
    fields = [field.attname for field in live._meta.concrete_fields]
    key = live._meta.pk.attname
    projected = {row[key]: row for row in live._default_manager.filter(pk__in=keys).values(*fields)}
    folded = {row[key]: row for row in shadow._default_manager.filter(pk__in=keys).values(*fields)}
    table = live._meta.db_table
    found = []
    for pk in sorted(set(projected) | set(folded), key=str):
        row, fresh = projected.get(pk), folded.get(pk)
        if row is None:
            why = "missing from the read model"
        elif fresh is None:
            why = "in the read model, not in a fresh fold"
        else:
            columns = [name for name in fields if row[name] != fresh[name]]
            why = "differs from a fresh fold in " + ", ".join(columns)
        found.append(Finding(subject=f"{table} row {pk}", why=why))
    return found


def _differing_keys(live: type[models.Model], shadow: type[models.Model]) -> list[object]:
    """Primary keys of the rows only one table holds as they are, by the database."""
    quote = connection.ops.quote_name
    columns = quoted_columns(live)
    key = quote(str(live._meta.pk.column))
    mine, theirs = quote(live._meta.db_table), quote(shadow._meta.db_table)
    sql = (
        f"SELECT {key} FROM (SELECT {columns} FROM {mine} EXCEPT "
        f"SELECT {columns} FROM {theirs}) AS projected UNION "
        f"SELECT {key} FROM (SELECT {columns} FROM {theirs} EXCEPT "
        f"SELECT {columns} FROM {mine}) AS folded"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]

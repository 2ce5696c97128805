"""`Idempotency-Key` for write endpoints: the same key and body get the first response.

The durable record (the first response, kept for IDEMPOTENCY_TTL_SECONDS) lives in the
database and is inserted, once the response is known, in the same transaction as the
command's effects; its unique (owner, key) constraint is the authority, so two concurrent
duplicates give one effect (the second one's insert waits for the first to commit, then
its own effects are rolled back and the first response replayed).

A duplicate arriving mid-request should wait for the first answer rather than race it. On
PostgreSQL a transaction-scoped advisory lock on (owner, key), taken before anything runs,
does that. Other databases get a short in-flight lock in the cache instead.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from platform_core.models import IdempotencyRecord
from platform_core.storage.backends import backend
from platform_core.web.http import POSITION_HEADER

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
LOCK_SECONDS = 30
WAIT_SECONDS = 10.0
TABLE = IdempotencyRecord._meta.db_table
# Seeds the hash of (owner, key) into an advisory lock id of its own.
IDEMPOTENCY_LOCK_SEED = 0x1DE4


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _error(code: int, name: str, message: str) -> Response:
    return Response({"error": {"code": name, "message": message}}, status=code)


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        return _error(
            status.HTTP_409_CONFLICT,
            "idempotency_key_reused",
            f"This {HEADER} was used with a different request.",
        )
    headers = {"Location": record.location} if record.location else {}
    if isinstance(record.body, dict) and "log_position" in record.body:
        headers[POSITION_HEADER] = record.body["log_position"]
    response = Response(record.body, status=record.status_code, headers=headers)
    response["Idempotent-Replayed"] = "true"
    return response


def _wait_for_first(owner: str, key: str) -> None:
    """While another request holds the in-flight lock, wait (bounded) for it to finish."""
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.01
    while time.monotonic() < deadline and cache.get(f"idem:{owner}:{key}"):
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def idempotent(request: Request, handle: Callable[[], Response]) -> Response:
    """Run `handle` at most once per (user, Idempotency-Key); replay its 2xx response."""
    key = request.headers.get(HEADER)
    if key is None:
        return handle()
    if not key or len(key) > MAX_KEY_LENGTH:
        return _error(400, "invalid_idempotency_key", f"{HEADER} must be 1-255 characters.")
    owner = str(request.user.pk)
    fingerprint = _fingerprint(request)
    if backend().advisory_locks:
        return _run_once(owner, key, fingerprint, handle, held_in_database=True)
    lock = f"idem:{owner}:{key}"
    locked = cache.add(lock, 1, LOCK_SECONDS)
    if not locked:
        _wait_for_first(owner, key)
    try:
        return _run_once(owner, key, fingerprint, handle, held_in_database=False)
    finally:
        if locked:  # never release another request's lock
            cache.delete(lock)


def _run_once(
    owner: str,
    key: str,
    fingerprint: str,
    handle: Callable[[], Response],
    *,
    held_in_database: bool,
) -> Response:
    """With advisory locks the key is held in the database itself; elsewhere the caller
    holds it in the cache."""
    fresh_since = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    with transaction.atomic():
        if held_in_database:
            # A duplicate waits here until this transaction ends, then finds the first
            # response, before running anything.
            backend().hold_for_transaction(f"{owner}\n{key}", IDEMPOTENCY_LOCK_SEED)
        earlier = _record_of(owner, key, fresh_since)
        if earlier is not None:
            return _replay(earlier, fingerprint)
        response = handle()
        if not status.is_success(response.status_code):
            transaction.set_rollback(True)
            return response
        if _keep(owner, key, fingerprint, response, fresh_since):
            return response
        # A duplicate committed its record first (its insert came before ours): this
        # request's effects are undone and the first response is replayed.
        transaction.set_rollback(True)
    return _replay(IdempotencyRecord.objects.get(owner=owner, key=key), fingerprint)


def _record_of(owner: str, key: str, fresh_since: datetime) -> IdempotencyRecord | None:
    # Plain SQL: on every keyed request, the ORM's query building cost more than the query.
    found = backend().fetch(
        f"SELECT fingerprint, status_code, body, location FROM {TABLE}"
        " WHERE owner = %s AND key = %s AND created_at >= %s",
        [owner, key, fresh_since],
    )
    if not found:
        return None
    fingerprint, status_code, body, location = found[0]
    body = json.loads(body) if isinstance(body, str) else body  # JSON as text on SQLite
    return IdempotencyRecord(
        owner=owner,
        key=key,
        fingerprint=fingerprint,
        status_code=status_code,
        body=body,
        location=location,
    )


def _keep(
    owner: str,
    key: str,
    fingerprint: str,
    response: Response,
    fresh_since: datetime,
) -> bool:
    """Store the response under the key, replacing an expired record; False if a live
    record is there (committed by a concurrent duplicate)."""
    stored = backend().fetch(
        f"INSERT INTO {TABLE} AS r (owner, key, fingerprint, status_code, body, location,"
        " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (owner, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
        " status_code = EXCLUDED.status_code, body = EXCLUDED.body,"
        " location = EXCLUDED.location, created_at = EXCLUDED.created_at"
        " WHERE r.created_at < %s RETURNING id",
        [
            owner,
            key,
            fingerprint,
            response.status_code,
            # What the response renders as JSON (a UUID or a decimal as a string).
            json.dumps(response.data, default=str),
            response.headers.get("Location", ""),
            timezone.now(),
            fresh_since,
        ],
    )
    return bool(stored)

"""The dead-letter store: one place for every message that kept failing, whatever its
source (Kafka consumer, Celery command, projection, saga step)."""

from __future__ import annotations

import base64
import hashlib
import re
import traceback as tb
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from platform_core.messaging.envelope import Envelope
from platform_core.models import DeadLetter

_VOLATILE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f-]{27}|\d+")


def fingerprint(error: BaseException) -> str:
    """Groups failures by kind: the exception type, its message with ids and numbers
    blanked, and the innermost frame."""
    frames = tb.extract_tb(error.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].name}" if frames else ""
    message = _VOLATILE.sub("#", str(error))
    text = f"{type(error).__module__}.{type(error).__qualname__}|{message}|{where}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    source: str
    destination: str
    message_id: str
    payload: str
    headers: Mapping[str, Any]
    attempts: int


def payload_of(raw: bytes) -> tuple[str, dict[str, str]]:
    """A received payload as text PostgreSQL stores, and the header that says how: UTF-8
    text without NUL as it is, anything else in base64 (`payload_encoding`)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return text, {}
    return base64.b64encode(raw).decode(), {"payload_encoding": "base64"}


def _storable(text: str) -> str:
    """PostgreSQL's text and JSON refuse NUL: an error message or a header may hold one."""
    return text.replace("\x00", "\ufffd")


def record(failure: Failure, error: BaseException) -> DeadLetter:
    """Store (or update) the dead letter of a message that exhausted its attempts."""
    now = timezone.now()
    text = _storable("".join(tb.format_exception(error)))
    message = _storable(f"{type(error).__name__}: {error}")
    headers = {_storable(str(k)): _storable(str(v)) for k, v in failure.headers.items()}
    with transaction.atomic():
        letter, created = DeadLetter.objects.select_for_update().get_or_create(
            source=failure.source,
            message_id=failure.message_id,
            defaults={
                "destination": failure.destination,
                "payload": _storable(failure.payload),
                "headers": headers,
                "error": message,
                "traceback": text,
                "fingerprint": fingerprint(error),
                "attempts": failure.attempts,
                "first_failed_at": now,
                "last_failed_at": now,
            },
        )
        if not created:
            DeadLetter.objects.filter(pk=letter.pk).update(
                error=message,
                traceback=text,
                fingerprint=fingerprint(error),
                attempts=F("attempts") + failure.attempts,
                last_failed_at=now,
                status=DeadLetter.Status.PENDING,
            )
            letter.refresh_from_db()
    return letter


class CannotRetry(Exception):
    """No path is known to re-deliver a dead letter from this source."""


Redeliver = Callable[[DeadLetter], bool]


def retry(letter: DeadLetter, redeliver: Mapping[str, Redeliver]) -> bool:
    """Re-deliver one dead letter through the path it came from.

    `redeliver` maps a source (e.g. "consumer:orders-saga") to a function that delivers
    the letter again and answers whether it was processed (a duplicate counts: the effect
    already happened). The letter is marked retried on success; a new failure updates it.
    """
    deliver = redeliver.get(letter.source)
    if deliver is None:
        raise CannotRetry(f"no retry path for source {letter.source!r}")
    if not deliver(letter):
        return False
    DeadLetter.objects.filter(pk=letter.pk).update(
        status=DeadLetter.Status.RETRIED, retried_at=timezone.now()
    )
    return True


def envelope_headers(envelope: Envelope) -> dict[str, str]:
    """The envelope's attributes as stored with a dead letter (see `envelope_from`)."""
    headers = {
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "time": envelope.time.isoformat(),
        "subject": envelope.subject,
        "topic": envelope.topic,
        "key": envelope.key,
        **envelope.extra,
    }
    if envelope.correlation_id:
        headers["correlationid"] = envelope.correlation_id
    if envelope.causation_id:
        headers["causationid"] = envelope.causation_id
    return headers


def envelope_from(headers: Mapping[str, str], payload: str) -> Envelope:
    """The envelope a dead letter was made from; CannotRetry for a letter that never was
    an integration message (bytes that were not a CloudEvent)."""
    attrs = dict(headers)
    missing = [name for name in ("id", "type", "source", "time") if name not in attrs]
    if missing or "payload_encoding" in attrs:
        raise CannotRetry(
            "not an integration message (it came without "
            f"{', '.join(missing) or 'a text payload'}): nothing to deliver again; purge it"
        )
    known = ("id", "type", "source", "time", "subject", "topic", "key")
    return Envelope(
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        time=datetime.fromisoformat(attrs["time"]),
        subject=attrs.get("subject", ""),
        topic=attrs.get("topic", ""),
        key=attrs.get("key", ""),
        data=payload.encode(),
        correlation_id=attrs.pop("correlationid", None),
        causation_id=attrs.pop("causationid", None),
        extra={k: v for k, v in attrs.items() if k not in known},
    )

"""The dead-letter store: one place for every message that kept failing, whatever its
source (Kafka consumer, Celery command, RabbitMQ dead-letter queue, projection)."""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import logging
import re
import traceback as tb
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from platform_core.messaging.envelope import Envelope
from platform_core.models import DeadLetter
from platform_core.storage.connectivity import database_reachable

logger = logging.getLogger(__name__)

_VOLATILE = re.compile(r"0x[0-9a-f]+|[0-9a-f]{8}-[0-9a-f-]{27}|\d+")
ENCODING = "payload_encoding"  # the header saying a payload is kept in base64
# A letter's count of attempts is kept between 1 and this (its column is an integer).
MAX_ATTEMPTS = 1_000_000
# How often the store may refuse a letter while the database answers before the message
# is let go unrecorded (logged): the letter itself is what it refuses, not an outage.
STORE_REFUSALS = 5


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

    def __post_init__(self) -> None:
        # The names come from the message, whatever its sender put there (a NUL, an id of
        # 300 characters): a letter that cannot be stored would stop its consumer for good.
        for name, limit in (("source", 150), ("destination", 255), ("message_id", 255)):
            object.__setattr__(self, name, storable_key(getattr(self, name), limit))
        # So may the count (a Celery message's own `retries`, negative or huge).
        object.__setattr__(self, "attempts", min(max(int(self.attempts), 1), MAX_ATTEMPTS))


def payload_of(raw: bytes) -> tuple[str, dict[str, str]]:
    """A received payload as text PostgreSQL stores, and the header that says how: UTF-8
    text without NUL as it is, anything else in base64 (`payload_encoding`)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return text, {}
    return base64.b64encode(raw).decode(), {ENCODING: "base64"}


def raw_payload(letter: DeadLetter) -> bytes:
    """The bytes a letter's payload was made from (see `payload_of`)."""
    if letter.headers.get(ENCODING) != "base64":
        return letter.payload.encode()
    try:
        return base64.b64decode(letter.payload, validate=True)
    except binascii.Error as error:
        raise CannotRetry(f"its payload is not the base64 it says it is: {error}") from error


def storable_key(text: str, limit: int) -> str:
    """`text` as a column of `limit` characters holds it: without NUL and, when longer,
    cut and ended by a digest of the whole, so distinct long ids stay distinct."""
    text = _storable(text)
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: limit - len(digest) - 1]}~{digest}"


def _storable(text: str) -> str:
    """PostgreSQL's text and JSON refuse NUL and lone surrogates: an error message or a
    header may hold either."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _json_safe(value: Any) -> Any:
    """A header value as JSON PostgreSQL stores: structure kept, anything else as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {_storable(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return _storable(str(value))


def _error_fields(error: BaseException) -> dict[str, Any]:
    return {
        "error": _storable(f"{type(error).__name__}: {error}"),
        "traceback": _storable("".join(tb.format_exception(error))),
        "fingerprint": fingerprint(error),
        "last_failed_at": timezone.now(),
    }


def record(failure: Failure, error: BaseException) -> DeadLetter:
    """Store (or update) the dead letter of a message that exhausted its attempts."""
    fields = _error_fields(error)
    with transaction.atomic():
        letter, created = DeadLetter.objects.select_for_update().get_or_create(
            source=failure.source,
            message_id=failure.message_id,
            defaults={
                "destination": failure.destination,
                "payload": _storable(failure.payload),
                "headers": _json_safe(failure.headers),
                "attempts": failure.attempts,
                "first_failed_at": fields["last_failed_at"],
                **fields,
            },
        )
        if not created:
            failed_again(letter, error, attempts=failure.attempts)
    return letter


class Delays(Protocol):
    def delay(self, attempt: int) -> float: ...


def record_until_stored(
    failure: Failure,
    error: BaseException,
    *,
    delays: Delays,
    sleep: Callable[[float], object],
    who: str,
    give_up: bool = False,
) -> DeadLetter | None:
    """Record the letter, trying again (a broken connection dropped, backing off by
    `delays`) until the store takes it: whoever holds the message lets it go only once
    this returns, so a database outage neither loses it nor stops the caller. With
    `give_up` (a task run in the sender's request), one failure is logged and None
    answered instead.

    A store that refuses the letter STORE_REFUSALS times while the database answers
    refuses the letter, not for an outage: that is logged as an error and None answered,
    rather than hold the message, and the consumer or worker slot with it, for good."""
    attempt = refusals = 0
    while True:
        try:
            return record(failure, error)
        except Exception:
            attempt += 1
            if give_up:
                logger.exception("%s could not dead-letter %s", who, failure.message_id)
                return None
            close_old_connections()
            if database_reachable():
                refusals += 1
                if refusals >= STORE_REFUSALS:
                    logger.exception(
                        "%s: the store refused the dead letter of %s (%s, from %s) %d times"
                        " while the database answers; the message goes unrecorded",
                        *(who, failure.message_id, failure.destination, failure.source),
                        refusals,
                    )
                    return None
            logger.warning(
                "%s could not store the dead letter of %s (attempt %d); trying again",
                *(who, failure.message_id, attempt),
                exc_info=True,
            )
            sleep(delays.delay(attempt))


def failed_again(letter: DeadLetter, error: BaseException, *, attempts: int = 1) -> None:
    """The letter's message failed again: the same letter takes the new error and the
    attempts, and is pending again."""
    DeadLetter.objects.filter(pk=letter.pk).update(
        attempts=F("attempts") + attempts, status=DeadLetter.Status.PENDING, **_error_fields(error)
    )
    letter.refresh_from_db()


class CannotRetry(Exception):
    """No path is known to re-deliver a dead letter from this source."""


Redeliver = Callable[[DeadLetter], bool]


def retry(letter: DeadLetter, redeliver: Mapping[str, Redeliver]) -> bool:
    """Re-deliver one dead letter through the path it came from.

    `redeliver` maps a source (e.g. "consumer:orders-saga") to a function that delivers
    the letter again and answers whether it was processed (a duplicate counts: the effect
    already happened). The letter is marked retried on success, unless a new failure was
    recorded on it meanwhile (a message re-published to a broker may fail again before
    this returns); a new failure updates it.
    """
    deliver = redeliver.get(letter.source)
    if deliver is None:
        raise CannotRetry(f"no retry path for source {letter.source!r}")
    letter.refresh_from_db(fields=["attempts"])
    attempts = letter.attempts
    if not deliver(letter):
        return False
    DeadLetter.objects.filter(pk=letter.pk, attempts=attempts).update(
        status=DeadLetter.Status.RETRIED, retried_at=timezone.now()
    )
    return True


class Outcome(enum.Enum):
    RETRIED = "retried"
    FAILED = "failed again"
    REFUSED = "cannot retry"


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryResult:
    """What retrying one letter came to, and why when it did not work."""

    letter: DeadLetter
    outcome: Outcome
    reason: str = ""

    def __str__(self) -> str:
        letter = self.letter
        said = f"{self.outcome.value} {letter.pk} ({letter.source} {letter.message_id})"
        return f"{said}: {self.reason}" if self.reason else said


def retry_each(
    letters: Iterable[DeadLetter], redeliver: Mapping[str, Redeliver]
) -> Iterator[RetryResult]:
    """Retry every letter in turn, going on past those that fail again or cannot be
    retried, and tell how each went (as it goes: a bulk retry may take a while). An error
    of the retry itself (a broker that is down) is recorded on the letter as a failure."""
    for letter in letters:
        try:
            done = retry(letter, redeliver)
        except CannotRetry as error:
            yield RetryResult(letter=letter, outcome=Outcome.REFUSED, reason=str(error))
            continue
        except Exception as error:
            logger.exception("retrying dead letter %s failed", letter.pk)
            failed_again(letter, error)
            done = False
        else:
            letter.refresh_from_db()
        outcome = Outcome.RETRIED if done else Outcome.FAILED
        yield RetryResult(letter=letter, outcome=outcome, reason="" if done else letter.error)


def tally_line(tally: Mapping[Outcome, int]) -> str:
    """How a bulk retry went, in one line."""
    retried, failed, refused = (tally.get(outcome, 0) for outcome in Outcome)
    return f"{retried} retried, {failed} failed again, {refused} cannot be retried"


def envelope_headers(envelope: Envelope) -> dict[str, str]:
    """The envelope's attributes as stored with a dead letter (see `envelope_of`)."""
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


_ATTRIBUTES = ("id", "type", "source", "time")


def envelope_of(letter: DeadLetter) -> Envelope:
    """The integration message a consumer's dead letter holds, read as a consumer reads
    it: the envelope it was made from (`envelope_headers`) or, for a message that was no
    CloudEvent, its bytes and Kafka headers read again. ValueError if they still are not
    a CloudEvent."""
    attrs = {k: str(v) for k, v in letter.headers.items() if k != ENCODING}
    data = raw_payload(letter)
    if not all(name in attrs for name in _ATTRIBUTES):
        return Envelope.from_kafka(letter.destination, None, data, attrs)
    known = (*_ATTRIBUTES, "subject", "topic", "key")
    return Envelope(
        id=attrs["id"],
        type=attrs["type"],
        source=attrs["source"],
        time=datetime.fromisoformat(attrs["time"]),
        subject=attrs.get("subject", ""),
        topic=attrs.get("topic", ""),
        key=attrs.get("key", ""),
        data=data,
        correlation_id=attrs.pop("correlationid", None),
        causation_id=attrs.pop("causationid", None),
        extra={k: v for k, v in attrs.items() if k not in known},
    )

"""`manage.py dead_letters retry`: every letter gets an answer. A letter that never was an
integration message (bytes a consumer could not read) says it cannot be retried, and
`retry --all` goes on past it and reports each letter."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from platform_core.messaging import dead_letters
from platform_core.models import DeadLetter
from platform_core.runtime import Runtime

pytestmark = pytest.mark.django_db


def _poison(n: int) -> DeadLetter:
    payload, encoding = dead_letters.payload_of(b"\x00\xff garbage")
    return dead_letters.record(
        dead_letters.Failure(
            source="consumer:orders",
            destination="shipping.events.v1",
            message_id=f"shipping.events.v1/0/{n}",
            payload=payload,
            headers={"content-type": "a\x00b", **encoding},
            attempts=1,
        ),
        ValueError("not a CloudEvent: missing ce_id \x00"),
    )


def test_a_poison_letter_is_stored_without_nul_and_keeps_its_bytes():
    letter = _poison(1)
    letter.refresh_from_db()

    assert letter.headers == {"content-type": "a\ufffdb", "payload_encoding": "base64"}
    assert "\x00" not in letter.error
    assert dead_letters.payload_of(b"\x00\xff garbage")[0] == letter.payload


def test_retrying_a_poison_letter_says_why_it_cannot(platform_runtime: Runtime):
    letter = _poison(1)

    with pytest.raises(CommandError, match="not an integration message"):
        call_command("dead_letters", "retry", str(letter.pk))


def test_retry_all_goes_on_past_letters_it_cannot_retry_and_reports_each(
    platform_runtime: Runtime,
):
    letters = [_poison(n) for n in range(3)]
    unknown = dead_letters.record(
        dead_letters.Failure(
            source="consumer:retired-group",
            destination="t",
            message_id="m-1",
            payload="{}",
            headers={},
            attempts=1,
        ),
        RuntimeError("boom"),
    )
    out = StringIO()

    call_command("dead_letters", "retry", "--all", stdout=out)

    lines = out.getvalue().splitlines()
    for letter in [*letters, unknown]:
        assert any(line.startswith(f"cannot retry {letter.pk}:") for line in lines), lines
    assert lines[-1] == "0 retried, 0 failed again, 4 cannot be retried"
    assert DeadLetter.objects.filter(status=DeadLetter.Status.PENDING).count() == 4

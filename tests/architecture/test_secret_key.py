"""Outside DEBUG the platform refuses to start on a secret key an attacker could know."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "key",
    [
        "",  # none: the embedded default's key
        "short",
        "x" * 60,  # long, but one character
        "django-insecure-" + GOOD,
        "change-me-to-a-long-random-string-before-exposing-this",
    ],
    ids=["unset", "short", "repeated", "django-insecure", "placeholder"],
)
def test_debug_off_with_a_weak_key_refuses_to_start(key):
    result = _start(DEBUG="0", SECRET_KEY=key)

    assert result.returncode != 0
    assert "SECRET_KEY must be a random value of at least 50 characters" in result.stderr


def test_debug_off_with_a_random_key_starts_and_debug_on_needs_none():
    assert _start(DEBUG="0", SECRET_KEY=GOOD).returncode == 0
    assert _start().returncode == 0  # no key: DEBUG defaults on, the embedded default

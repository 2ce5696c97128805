"""py-spy over the busiest processes of fulfillment.py's deployment while the load runs,
and each recording summed up: the share by library of the innermost recognised frame, and
the top self frames."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from _common import Proc
from fulfillment_fleet import BIN


def py_spy(targets: Sequence[Proc], seconds: float, outdir: Path) -> list[tuple[Proc, Path]]:
    """Start `py-spy record` (raw collapsed stacks, --nonblocking) on each target.

    Only samples of a thread holding the GIL count (`--gil`): CPU spent in Python and in
    the C code it calls without releasing the GIL, not the waits for PostgreSQL or the
    broker, which a saturated machine otherwise shows as busy."""
    exe = BIN / "py-spy"
    if not exe.exists():
        exe = Path(shutil.which("py-spy") or "")
    if not exe.name:
        print("py-spy not found; no profile")
        return []
    started = []
    for proc in targets:
        out = outdir / f"pyspy-{proc.role}.txt"
        cmd = [str(exe), "record", "--pid", str(proc.pid), "--duration", str(int(seconds))]
        cmd += ["--rate", "100", "--format", "raw", "--nonblocking", "--gil", "--output", str(out)]
        if proc.role == "worker":
            cmd.append("--subprocesses")
        started.append(
            (
                proc,
                out,
                subprocess.Popen(
                    cmd,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                ),
            )
        )
    done = []
    for proc, out, popen in started:
        try:
            popen.wait(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=5)
        if out.exists():
            done.append((proc, out))
    return done


CATEGORIES = (  # (label, substrings of a frame's file) - the first match wins, leaf first
    ("PostgreSQL client (psycopg)", ("psycopg",)),
    ("Django ORM / SQL compiler", ("django/db/",)),
    (
        "Django request/response, middleware, urls",
        (
            "django/core/",
            "django/http/",
            "django/middleware/",
            "django/urls/",
            "django/contrib/",
            "whitenoise",
        ),
    ),
    ("DRF (parsing, serializers, auth)", ("rest_framework",)),
    ("Celery/kombu/AMQP publish & consume", ("kombu", "celery", "amqp", "vine", "billiard")),
    ("Kafka client (confluent_kafka)", ("confluent_kafka",)),
    ("Redis client", ("redis", "django_redis")),
    ("ASGI server (daphne/twisted/asgiref)", ("daphne", "twisted", "asgiref", "autobahn")),
    ("JSON/msgspec/serialization", ("json/", "msgspec", "serialization.py")),
    ("logging", ("logging/", "logs.py")),
    ("platform_core", ("platform_core",)),
    (
        "bounded contexts (orders, inventory, payments, shipping, projections)",
        ("/orders/", "/inventory/", "/payments/", "/shipping/", "/projections/"),
    ),
)
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def summarize_py_spy(
    path: Path, top: int = 10
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """(samples, share by category of the innermost recognised frame, top self frames)."""
    by_category: collections.Counter[str] = collections.Counter()
    by_leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if "(" in f]
        leaf = frames[-1] if frames else stack
        match = FRAME.match(leaf)
        short = leaf
        if match:
            file = match["file"].split("site-packages/")[-1].split("/work/main/")[-1]
            short = f"{match['func']} ({file})"
        by_leaf[short] += count
        label = "other (stdlib, interpreter)"
        for frame in reversed(frames):
            m = FRAME.match(frame)
            file = m["file"] if m else frame
            hit = next((lab for lab, keys in CATEGORIES if any(k in file for k in keys)), None)
            if hit:
                label = hit
                break
        by_category[label] += count
    if not total:
        return 0, [], []
    cats = [(k, 100 * v / total) for k, v in by_category.most_common()]
    leaves = [(k, 100 * v / total) for k, v in by_leaf.most_common(top)]
    return total, cats, leaves

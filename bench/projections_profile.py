"""--profile of projections.py: py-spy over one order_summary rebuild and over the live
projector's first batches, printed as the functions most often on the stack and the parts
of the pipeline (read, decode and apply, write, checkpoint) the time goes to."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from _common import ROOT, render_table
from projections_catch_up import reset_projections
from projections_rebuild import PROJECTIONS, rebuild

Part = tuple[str, str, frozenset[str]]  # label, file (path suffix), function names


def _part(label: str, path: str, *functions: str) -> Part:
    return label, path, frozenset(functions)


HANDLERS = "on_*"  # a projection's event handlers
REBUILD_PARTS = (
    _part("read_all: SQL, fetch, RecordedEvent", "platform_core/storage/sql_store.py", "read_all"),
    _part("  of which rows to RecordedEvent", "platform_core/storage/sql_store.py", "_recorded"),
    _part("apply: decode + handlers", "platform_core/projections/projector.py", "apply"),
    _part("  of which codec.decode", "platform_core/eventsourcing/serialization.py", "decode"),
    _part("  of which the projection's handlers", "projections/", HANDLERS),
    _part(
        "write rows: COPY new, upsert seen",
        "platform_core/storage/row_writer.py",
        "insert",
        "upsert",
    ),
    _part("swap: DELETE + INSERT ... SELECT", "platform_core/projections/rebuild.py", "_swap"),
    _part(
        "create/drop shadow tables",
        "platform_core/projections/rebuild.py",
        "_create_shadows",
        "_drop_shadows",
    ),
)
CATCH_UP_PARTS = (
    _part("read_all: SQL, fetch, RecordedEvent", "platform_core/storage/sql_store.py", "read_all"),
    _part("apply: decode + handlers", "platform_core/projections/projector.py", "apply"),
    _part("  of which loading rows", "platform_core/projections/read_models.py", "get", "preload"),
    _part("write rows: upsert", "platform_core/storage/row_writer.py", "insert", "upsert"),
    _part("announce: frames for websocket clients", "projections/live.py", "announce_orders"),
    _part("  of which order_update (the frame's JSON)", "projections/live.py", "order_update"),
    _part(
        "checkpoint: lock, advance",
        "platform_core/projections/checkpoints.py",
        "locked_checkpoint",
        "advance",
    ),
)


@contextlib.contextmanager
def py_spy(output: Path, rate: int = 250) -> Iterator[None]:
    """Sample this process (every thread, idle ones left out) with py-spy into `output`
    (raw collapsed stacks) while the block runs."""
    exe = Path(sys.executable).parent / "py-spy"
    if not exe.exists():
        exe = Path(shutil.which("py-spy") or "py-spy")
    command = [str(exe), "record", "--pid", str(os.getpid()), "--rate", str(rate)]
    command += ["--format", "raw", "--nonblocking", "--output", str(output)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the work starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=5)


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw output: (frames outermost first, as "function (file)"; samples)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
            stacks.append((frames, int(count)))
    return stacks


def _is(frame: str, path: str, functions: frozenset[str]) -> bool:
    qualified, _, where = frame.partition(" (")
    if path not in where:
        return False
    function = qualified.rpartition(".")[2]  # py-spy names methods Class.method
    return function in functions or (HANDLERS in functions and function.startswith("on_"))


def print_profile(stacks: list[tuple[list[str], int]], rate: int, parts: Iterable[Part]) -> None:
    """The top 10 functions by samples that have them on the stack, and the parts."""
    total = sum(count for _, count in stacks) or 1
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        # Frames of files without a folder are this script's and the stdlib's entry points.
        for frame in {f for f in frames if "/" in f.partition(" (")[2]}:
            inclusive[frame] += count
    rows = [
        [_short(frame), f"{count / rate:.2f}", f"{100 * count / total:.0f}%"]
        for frame, count in inclusive.most_common(10)
    ]
    print(render_table(["on the stack (top 10)", "CPU s", "share"], rows))
    rows = []
    for label, path, functions in parts:
        count = sum(c for frames, c in stacks if any(_is(f, path, functions) for f in frames))
        rows.append([label, f"{count / rate:.2f}", f"{100 * count / total:.0f}%"])
    print(render_table(["where the time goes", "CPU s", "share"], rows))


def profile(flat: dict[str, Any], batches: int, logdir: Path, rate: int = 250) -> None:
    """py-spy over one order_summary rebuild, then over the live projector's first
    `batches` batches per projection from checkpoint 0; print where the time goes."""
    from platform_core.runtime import runtime

    output = logdir / "rebuild.spy"
    with py_spy(output, rate):
        events, seconds = rebuild("order_summary")
    print(f"\npy-spy ({rate} Hz) over one order_summary rebuild: {events:,} events in")
    print(f"{seconds:.2f} s ({events / seconds:,.0f}/s); every thread, idle time left out:")
    print_profile(read_stacks(output), rate, REBUILD_PARTS)

    runner, output = runtime().projections, logdir / "catch-up.spy"
    reset_projections()
    with py_spy(output, rate):
        for _ in range(batches):
            for name in runner.names:
                runner.run_batch(name)
    print(f"\npy-spy over the live projector's first {batches} batches per projection from 0:")
    print_profile(read_stacks(output), rate, CATCH_UP_PARTS)
    for name in PROJECTIONS:  # the live server starts from rebuilt tables at the head
        rebuild(name)


def _short(frame: str) -> str:
    for marker in ("site-packages/", f"{ROOT.as_posix()}/"):
        frame = frame.replace(marker, "")
    return re.sub(r"\(/\S*/lib/python3\.\d+/", "(", frame)

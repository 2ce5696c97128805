"""The garbage collector's pause around projector batches (no database needed)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from platform_core.projections.collector import collector_paused


@pytest.fixture
def collector_running() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_held_off_during_the_block_and_runs_after(collector_running):
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_resumes_only_when_the_last_overlapping_pause_ends(collector_running):
    first_in, second_out = threading.Event(), threading.Event()
    during: list[bool] = []

    def other_thread() -> None:
        with collector_paused():
            first_in.set()
            second_out.wait(5)
        during.append(gc.isenabled())

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert first_in.wait(5)
    with collector_paused():
        pass
    still_paused = not gc.isenabled()
    second_out.set()
    thread.join(5)

    assert still_paused, "one thread's pause ending does not end another's"
    assert during == [True]
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off(collector_running):
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_collector_resumes_when_the_block_raises(collector_running):
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a handler failed")
    assert gc.isenabled()

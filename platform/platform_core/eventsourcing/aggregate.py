"""Event-sourced aggregate root: its state is a fold of its events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, NoReturn, Self, TypeVar

State = TypeVar("State")
# What an aggregate reads the time from (tests give a fixed one).
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnknownEvent(TypeError):
    """An aggregate was given an event type its `_apply` does not know: the stream and
    the code disagree, and guessing would fold a wrong state."""


class Aggregate(Generic[State]):
    """Base of every aggregate.

    A command method validates, then calls `_record(event)`; `_apply(event)` only evolves
    `_state`. The whole state lives in one value object (`state_type`), which is also
    what a snapshot stores.
    """

    category: ClassVar[str]
    state_type: ClassVar[type[Any]]
    # Bump when `state_type` changes shape: older snapshots are then ignored.
    snapshot_schema: ClassVar[int] = 1

    def __init__(self, aggregate_id: str, *, clock: Clock = utc_now) -> None:
        self.id = aggregate_id
        self._clock = clock
        self.version = 0
        self._state: State | None = None
        self._pending: list[Any] = []

    @property
    def state(self) -> State:
        if self._state is None:
            raise LookupError(f"{type(self).__name__} {self.id} has no events yet")
        return self._state

    @property
    def exists(self) -> bool:
        return self._state is not None

    @classmethod
    def stream_id_for(cls, aggregate_id: str) -> str:
        return f"{cls.category}-{aggregate_id}"

    @classmethod
    def from_snapshot(
        cls, aggregate_id: str, version: int, state: State, *, clock: Clock = utc_now
    ) -> Self:
        aggregate = cls(aggregate_id, clock=clock)
        aggregate._state = state
        aggregate.version = version
        return aggregate

    def replay(self, event: Any) -> None:
        """Evolve state with an event that is already stored."""
        self._apply(event)
        self.version += 1

    def _now(self) -> datetime:
        """The time a recorded event says it happened, from the aggregate's clock."""
        return self._clock()

    def _record(self, event: Any) -> None:
        self.replay(event)
        self._pending.append(event)

    def _apply(self, event: Any) -> None:
        raise NotImplementedError

    def _unknown(self, event: Any) -> NoReturn:
        """The end of every `_apply`: an event it does not know is an error, never skipped."""
        raise UnknownEvent(f"{type(self).__name__} {self.id} cannot apply {type(event).__name__}")

    def collect_pending(self) -> list[Any]:
        """The events recorded since load, handing them over exactly once."""
        pending, self._pending = self._pending, []
        return pending

    @property
    def pending_count(self) -> int:
        return len(self._pending)

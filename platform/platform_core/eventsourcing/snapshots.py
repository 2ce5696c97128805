"""The snapshot port: a cached aggregate state at a stream version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    stream_id: str
    version: int
    schema: int
    state: bytes


class SnapshotStore(Protocol):
    def load(self, stream_id: str) -> Snapshot | None: ...

    def save(self, snapshot: Snapshot) -> None: ...

"""The retry policy every backoff in the platform shares: command conflicts (the bus), a
consumer's failing message, a broker a relay lane cannot reach, a lost LISTEN connection.

Not tenacity or stamina: both draw their jitter from the `random` module's global state,
and the tests need each policy's own seeded source to replay a run exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to base * 2**(n-1).

    `jitter` is the random source of the waits (tests give a seeded one). By default the
    operating system's: a generator of the process's own, made at import, would be
    copied into every child of a prefork pool, and the children would draw the same
    waits (two commands that conflict would retry in step, and conflict again)."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 30.0
    jitter: random.Random = field(default_factory=random.SystemRandom, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(attempt - 1, 32))
        return self.jitter.uniform(0, ceiling)

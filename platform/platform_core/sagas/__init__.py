"""Orchestrated sagas, declared as data and run from their replies.

- `definition`: `SagaDefinition`, `Step`, `Reply` (the semantics are written there).
- `progress.SagaProgress`: the engine's decisions, apart from I/O.
- `manager`: `SagaManager` (locks, decides, writes) and `run_timers` (deadlines).
"""

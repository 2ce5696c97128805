"""Event sourcing in plain Python: nothing here imports Django or a broker.

- `aggregate.Aggregate`: state as a fold of events.
- `eventstore.EventStore` (the port), `NewEvent`, `RecordedEvent`, `LogPosition`,
  `ConcurrencyError`.
- `snapshots.SnapshotStore` (the port), `Snapshot`.
- `repository.Repository`: load by replay (from a snapshot when there is one), save.
- `serialization.EventCodec`: event objects to stored JSON and back, upcasting.
- `bus.CommandBus`: one transaction per command, retried on conflicts.
- `retry.RetryPolicy`: the backoff every retry loop in the platform shares.
- `messages.MessageContext`: correlation, causation and actor of the message being handled.
- `errors`: `DomainError` and its categories (`InvalidCommand`, `NotFound`, `Conflict`).
- `memory`: in-memory adapters of the ports, for unit tests.
"""

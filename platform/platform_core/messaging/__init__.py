"""Integration messages between bounded contexts: written, published, consumed.

- `envelope`: `Envelope` (CloudEvents 1.0), `Outgoing`, the `Publisher` port.
- `outbox.Outbox`: integration events stored in the transaction of the domain events.
- `relay.OutboxRelay`: publishes outbox rows in order, per lane.
- `kafka`: `KafkaPublisher` and `KafkaConsumerRunner`; `local.LocalPublisher` in process.
- `consumers.ConsumerGroup`: idempotent handling through the `inbox`, retries, dead letters.
- `dead_letters`: the store of messages that kept failing, and their retry.
- `wakeups`: wake the relay and the projector when another process commits.
"""

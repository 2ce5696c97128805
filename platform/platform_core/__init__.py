"""The reusable event-sourcing platform: event store, aggregates, command bus, projector.

Modules that the domain layer may import (`eventstore`, `serialization`, `aggregate`,
`errors`, `messages`) never import Django; the Django adapters live beside them.
"""

"""Commands between bounded contexts as Celery tasks, sent through the outbox.

- `celery_commands`: `command_task` (handled once, failures dead-lettered), `send_command`.
- `command_outbox`: commands as outbox rows and `CeleryCommandPublisher`, the relay's lane.
- `celery_queues`: one durable queue per context, each with its dead-letter queue.
- `dead_letter_queues`: what RabbitMQ dead-lettered, moved into the dead-letter store.
"""

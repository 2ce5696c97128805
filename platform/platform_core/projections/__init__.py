"""Read models kept from the global event log.

- `projector`: `Projection` (what a read model declares) and `ProjectionRunner`.
- `checkpoints`: where each projection is in the log, and why it stopped.
- `read_models`: rows as plain dicts, written in bulk.
- `rebuild`: a rebuild from the start while reads keep answering; `rebuild_requests` from the admin.
"""

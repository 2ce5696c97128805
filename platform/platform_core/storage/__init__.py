"""The ports of `eventsourcing` on the Django database, and the fast paths to it.

- `sql_store.event_store_for(connection)`: the PostgreSQL or SQLite event store.
- `django_snapshots.DjangoSnapshotStore`.
- `pg`: the hot statements straight on psycopg; `row_writer.RowWriter`: whole rows in bulk.
"""

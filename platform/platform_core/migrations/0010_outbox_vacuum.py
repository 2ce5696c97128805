"""On PostgreSQL, vacuum the outbox after every 10,000 changed rows, however large it is.

Every outbox row is updated once (marked published), and published rows stay for days,
so at the default scale factor (20% of the table) the dead row versions piled up for
longer the more the outbox held; the relay's query for unpublished rows walks their
index entries until a vacuum removes them. A no-op on SQLite.
"""

from django.db import migrations


def tune(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0,"
        " autovacuum_vacuum_threshold = 10000)"
    )


def untune(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
    )


class Migration(migrations.Migration):
    dependencies = [("platform_core", "0009_loop_heartbeats")]

    operations = [migrations.RunPython(tune, untune)]

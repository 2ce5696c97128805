from django.db import migrations, models

POSTGRES = [
    """CREATE TABLE event_store (
        position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        stream_id text NOT NULL,
        stream_type text NOT NULL,
        version integer NOT NULL,
        event_type text NOT NULL,
        schema_version smallint NOT NULL DEFAULT 1,
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT event_store_stream_version_key UNIQUE (stream_id, version)
    )""",
    "CREATE INDEX event_store_log_idx ON event_store (transaction_id, position)",
]

SQLITE = [
    """CREATE TABLE event_store (
        position integer PRIMARY KEY AUTOINCREMENT,
        transaction_id integer NOT NULL DEFAULT 0,
        stream_id text NOT NULL,
        stream_type text NOT NULL,
        version integer NOT NULL,
        event_type text NOT NULL,
        schema_version integer NOT NULL DEFAULT 1,
        data text NOT NULL,
        metadata text NOT NULL,
        recorded_at text NOT NULL,
        CONSTRAINT event_store_stream_version_key UNIQUE (stream_id, version)
    )""",
]


def create(apps, schema_editor):
    statements = POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE
    for statement in statements:
        schema_editor.execute(statement)


def drop(apps, schema_editor):
    schema_editor.execute("DROP TABLE event_store")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop)],
            state_operations=[
                migrations.CreateModel(
                    name="StoredEvent",
                    fields=[
                        ("position", models.BigIntegerField(primary_key=True, serialize=False)),
                        ("transaction_id", models.BigIntegerField()),
                        ("stream_id", models.TextField()),
                        ("stream_type", models.TextField()),
                        ("version", models.IntegerField()),
                        ("event_type", models.TextField()),
                        ("schema_version", models.IntegerField()),
                        ("data", models.JSONField()),
                        ("metadata", models.JSONField()),
                        ("recorded_at", models.DateTimeField()),
                    ],
                    options={"db_table": "event_store", "ordering": ("position",)},
                ),
            ],
        )
    ]

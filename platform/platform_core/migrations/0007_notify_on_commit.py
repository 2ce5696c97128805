"""On PostgreSQL, NOTIFY a channel when a transaction that inserted outbox rows commits,
so the relay and the projector of other processes wake (platform_core.messaging.wakeups says why
there is no such trigger on event_store).

Statement-level triggers: one notification per INSERT statement, without a round trip to
the client; the empty payload lets PostgreSQL fold a transaction's repeats into one, and
a notification is delivered only at commit. SQLite has no notifications: a no-op there.
"""

from django.db import migrations

# Copied from platform_core.messaging.wakeups (OUTBOX_CHANNEL) rather than imported:
# a migration must keep doing what it did when it was written, whatever the app code becomes.
TRIGGERS = {
    "outbox": ("outbox_notify_on_commit", "platform_outbox"),
}

CREATE_FUNCTION = """
CREATE FUNCTION platform_notify_on_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$$"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION)
    for table, (trigger, channel) in TRIGGERS.items():
        schema_editor.execute(
            f"CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION platform_notify_on_commit('{channel}')"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, (trigger, _) in TRIGGERS.items():
        schema_editor.execute(f"DROP TRIGGER {trigger} ON {table}")
    schema_editor.execute("DROP FUNCTION platform_notify_on_commit()")


class Migration(migrations.Migration):
    dependencies = [
        ("platform_core", "0006_projection_rebuild_requests"),
    ]

    operations = [migrations.RunPython(create, drop)]

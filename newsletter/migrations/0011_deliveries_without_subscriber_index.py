import django.db.models.deletion
from django.db import migrations, models

SUBSCRIBER = models.Index(fields=["subscriber"], name="delivery_subscriber")


def drop_subscriber_index(apps, schema_editor):
    """The index alone, found by its column (Django named it): on SQLite, AlterField would
    copy the whole table to drop it; on PostgreSQL, without blocking the table's writers."""
    connection, table = schema_editor.connection, apps.get_model("newsletter", "Delivery")._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    concurrently = " CONCURRENTLY" if connection.vendor == "postgresql" else ""
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and info["columns"] == ["subscriber_id"]:
            schema_editor.execute(f"DROP INDEX{concurrently} {schema_editor.quote_name(name)}")


def add_subscriber_index(apps, schema_editor):
    delivery = apps.get_model("newsletter", "Delivery")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SUBSCRIBER.create_sql(delivery, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(delivery, SUBSCRIBER)


class Migration(migrations.Migration):
    atomic = False  # DROP and CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("newsletter", "0010_vote_latest_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_subscriber_index, add_subscriber_index)],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="subscriber",
                    field=models.ForeignKey(
                        db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="deliveries", to="newsletter.subscriber",
                    ),
                ),
            ],
        ),
    ]

import django.db.models.deletion
from django.db import migrations, models


def drop_subscriber_index(apps, schema_editor):
    """Drops the index alone: on SQLite, AlterField would copy the whole table to drop it."""
    Delivery = apps.get_model("newsletter", "Delivery")
    connection, table = schema_editor.connection, Delivery._meta.db_table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and info["columns"] == ["subscriber_id"]:
            schema_editor.execute(f"DROP INDEX {schema_editor.quote_name(name)}")


def add_subscriber_index(apps, schema_editor):
    Delivery = apps.get_model("newsletter", "Delivery")
    schema_editor.add_index(Delivery, models.Index(fields=["subscriber"], name="delivery_subscriber"))


class Migration(migrations.Migration):

    dependencies = [
        ('newsletter', '0010_vote_latest_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_subscriber_index, add_subscriber_index)],
            state_operations=[
                migrations.AlterField(
                    model_name='delivery',
                    name='subscriber',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='deliveries', to='newsletter.subscriber'),
                ),
            ],
        ),
    ]

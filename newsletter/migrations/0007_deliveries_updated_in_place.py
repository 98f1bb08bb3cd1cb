from django.db import migrations, models

# A row is inserted small (pending, no picks: ~140 bytes) and grows to ~550 with its picks and
# outcome: pages filled to a fifth at insert time have room for the row's later versions, so
# its claim and its outcome update it where it is (a HOT update) instead of adding an entry to
# every index of the table; the page is about full once its rows are sent. Measured with
# bench/digests.py on PostgreSQL: 90 % of updates HOT (none before), the server's CPU time
# ~20 % less.
FILLFACTOR = 20


def set_fillfactor(apps, schema_editor, fillfactor=FILLFACTOR):
    if schema_editor.connection.vendor == "postgresql":
        table = schema_editor.quote_name(apps.get_model("newsletter", "Delivery")._meta.db_table)
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(fillfactor)})")


def reset_fillfactor(apps, schema_editor):
    set_fillfactor(apps, schema_editor, fillfactor=100)


CREATED = models.Index(fields=["created_at"], name="delivery_created")


def add_created_index(apps, schema_editor):
    delivery = apps.get_model("newsletter", "Delivery")
    if schema_editor.connection.vendor == "postgresql":
        # Built without blocking the table's writers: a delivery table is large.
        schema_editor.execute(CREATED.create_sql(delivery, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(delivery, CREATED)


def remove_created_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("newsletter", "Delivery"), CREATED)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("newsletter", "0006_votes_read_from_an_index"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="delivery",
            name="delivery_sending",
        ),
        migrations.AlterField(
            model_name="delivery",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, help_text="When it was queued (again, if requeued)."),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="delivery", index=CREATED)],
            database_operations=[migrations.RunPython(add_created_index, remove_created_index)],
        ),
        migrations.RunPython(set_fillfactor, reset_fillfactor),
    ]

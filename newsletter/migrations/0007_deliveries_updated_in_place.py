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


class Migration(migrations.Migration):

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
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(fields=["created_at"], name="delivery_created"),
        ),
        migrations.RunPython(set_fillfactor, reset_fillfactor),
    ]

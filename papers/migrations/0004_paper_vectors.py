from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("papers", "0003_fetch_runs")]

    operations = [
        migrations.AddField(
            model_name="paper",
            name="vector",
            field=models.JSONField(blank=True, default=dict, editable=False, help_text="Text vector (papers.vectors)."),
        ),
        # Filled by 0005, which replaces these vectors by another model's.
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("newsletter", "0002_votes_and_authors"), ("papers", "0004_paper_vectors")]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="interest_key",
            field=models.CharField(blank=True, editable=False, max_length=16),
        ),
        migrations.AddIndex(
            model_name="subscriber",
            index=models.Index(fields=["interest_key", "id"], name="subscriber_interest_order"),
        ),
    ]

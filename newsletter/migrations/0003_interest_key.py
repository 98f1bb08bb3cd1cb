from django.db import migrations, models


def fill(apps, schema_editor):
    from newsletter.models import interest_key

    Subscriber = apps.get_model("newsletter", "Subscriber")
    through = Subscriber.topics.through
    for subscriber in Subscriber.objects.iterator(chunk_size=2000):
        topics = through.objects.filter(subscriber_id=subscriber.pk).values_list("topic_id", flat=True)
        key = interest_key(subscriber.frequency, topics, subscriber.keywords, subscriber.authors)
        Subscriber.objects.filter(pk=subscriber.pk).update(interest_key=key)


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
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]

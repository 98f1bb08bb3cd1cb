from django.db import migrations, models


def fill_vectors(apps, schema_editor):
    from papers.vectors import text_vector

    Paper = apps.get_model("papers", "Paper")
    for paper in Paper.objects.only("id", "title", "abstract").iterator(chunk_size=1000):
        Paper.objects.filter(pk=paper.pk).update(vector=text_vector(paper.title, paper.abstract))


class Migration(migrations.Migration):
    dependencies = [("papers", "0003_fetch_runs")]

    operations = [
        migrations.AddField(
            model_name="paper",
            name="vector",
            field=models.JSONField(blank=True, default=dict, editable=False, help_text="Text vector (papers.vectors)."),
        ),
        migrations.RunPython(fill_vectors, migrations.RunPython.noop),
    ]

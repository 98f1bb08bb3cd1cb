from django.db import migrations, models


def embed(apps, schema_editor):
    from papers.services import papers_embed

    papers_embed(papers=apps.get_model("papers", "Paper").objects.all())


class Migration(migrations.Migration):
    """Dense embeddings (papers.vectors) instead of hashed word counts, with the model that made them."""

    dependencies = [("papers", "0004_paper_vectors")]

    operations = [
        migrations.RemoveField(model_name="paper", name="vector"),
        migrations.AddField(
            model_name="paper",
            name="vector",
            field=models.BinaryField(blank=True, default=b"", editable=False, help_text="Text vector (papers.vectors)."),
        ),
        migrations.AddField(
            model_name="paper",
            name="vector_model",
            field=models.CharField(blank=True, editable=False, help_text="The model that made `vector`.", max_length=100),
        ),
        migrations.RunPython(embed, migrations.RunPython.noop),
    ]

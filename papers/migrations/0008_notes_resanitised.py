from django.db import migrations

from papers.notes import sanitize_note


def resanitise(apps, schema_editor):
    """Notes stored before: links to refused addresses left as their words, bare addresses linked."""
    Feature = apps.get_model("papers", "Feature")
    for feature in Feature.objects.exclude(note="").only("id", "note").iterator():
        note = sanitize_note(feature.note)
        if note != feature.note:
            Feature.objects.filter(pk=feature.pk).update(note=note)


class Migration(migrations.Migration):
    dependencies = [("papers", "0007_feature_changes")]

    operations = [migrations.RunPython(resanitise, migrations.RunPython.noop)]

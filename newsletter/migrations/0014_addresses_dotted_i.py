"""Addresses stored with i + U+0307 (a dotted capital İ lower-cased) in the form email_fold()
now gives them, i, and the salted hashes of suppressed ones with them, so that İdn@, idn@ and
the row stored before are one subscriber.

Written out rather than calling email_fold(), so that the migration keeps doing what it did.
"""

import hmac
import unicodedata

from django.conf import settings
from django.db import migrations

DOTTED_I = "i\u0307"


def _hash(email):
    # models.email_hash of a stored (lower-case) address: HMAC-SHA256 with SUPPRESSION_SALT.
    return hmac.new(settings.SUPPRESSION_SALT.encode(), email.encode(), "sha256").hexdigest()


def fold_dotted_i(apps, schema_editor):
    Subscriber = apps.get_model("newsletter", "Subscriber")
    Suppression = apps.get_model("newsletter", "Suppression")
    for pk, email in Subscriber.objects.filter(email__contains=DOTTED_I).values_list("pk", "email"):
        folded = unicodedata.normalize("NFC", email.replace(DOTTED_I, "i"))
        if Subscriber.objects.filter(email=folded).exists():
            # Both spellings signed up (the bug this fixes): which to keep is a person's call.
            print(f"\n  subscribers {email!r} (id {pk}) and {folded!r} are one mailbox: merge them by hand")
            continue
        Subscriber.objects.filter(pk=pk).update(email=folded)
        if not Suppression.objects.filter(email_hash=_hash(folded)).exists():
            Suppression.objects.filter(email_hash=_hash(email)).update(email_hash=_hash(folded))


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0013_edition_erased_counts"),
    ]

    operations = [migrations.RunPython(fold_dotted_i, migrations.RunPython.noop)]

"""Picks stored with an English reason ([paper id, "matches your topic Robotics"]) in the typed
form newsletter.reasons reads ([paper id, "topic", "Robotics", 0.0]), on deliveries and on
the editions' recorded offers, so that old web copies section as they did.

The old sentences are read here, once, as the ranker wrote them; the patterns and wording are
written out rather than imported, so that the migration keeps doing what it did. A strength
the sentence did not say (all but the upvotes of trending and explore picks) is 0. A liked
paper is named by its id where one paper has that title, else by its title alone (its section
is keyed by the title, as before). Reversible: the typed form is worded back.
"""

import re

from django.db import migrations

BATCH = 2000

PATTERNS = [
    (re.compile(r"featured by the editors"), "featured"),
    (re.compile(r"matches your topic (?P<x>.+)"), "topic"),
    (re.compile(r"mentions '(?P<x>.+)'"), "keyword"),
    (re.compile(r"by (?P<x>.+), whom you follow"), "author"),
    (re.compile(r"similar to '(?P<x>.+)', which you liked"), "similar-to"),
    (re.compile(r"trending: (?P<n>\d+) upvotes?"), "trending"),
    (re.compile(r"outside what you usually read: (?P<n>\d+) upvotes?"), "explore"),
    (re.compile(r"a first taste of (?P<x>.+)"), "first-taste"),
]

WORDING = {
    "featured": "featured by the editors",
    "topic": "matches your topic {subject}",
    "keyword": "mentions '{subject}'",
    "author": "by {subject}, whom you follow",
    "similar-to": "similar to '{label}', which you liked",
    "seed": "close to your paper '{label}'",
    "trending": "trending: {n} upvote{s}",
    "explore": "outside what you usually read: {n} upvote{s}",
    "first-taste": "a first taste of {subject}",
}


def _typed(sentence, paper_ids):
    """[kind, subject, strength(, label)] of an English reason."""
    for pattern, kind in PATTERNS:
        match = pattern.fullmatch(sentence)
        if match:
            found = match.groupdict()
            if kind == "similar-to":
                title = found["x"]
                return [kind, paper_ids(title), 0.0, title]
            return [kind, found.get("x", ""), float(found.get("n", 0))]
    return ["trending", "", 0.0]  # never written by the ranker: a fill-in, as trending picks are


def _worded(reason):
    kind, subject, strength, *label = reason
    n = int(strength)
    return WORDING[kind].format(subject=subject, label=label[0] if label else "", n=n, s="" if n == 1 else "s")


def _convert(apps, reason):
    """Every stored reason through reason(), which gives None for one already converted."""
    Delivery = apps.get_model("newsletter", "Delivery")
    Edition = apps.get_model("newsletter", "Edition")
    changed = []
    for pk, picks in Delivery.objects.order_by("pk").values_list("pk", "picks").iterator(chunk_size=BATCH):
        converted = [reason(pick[1:]) for pick in picks]
        if picks and converted[0] is not None:
            changed.append(Delivery(pk=pk, picks=[[pick[0], *new] for pick, new in zip(picks, converted)]))
        if len(changed) >= BATCH:
            Delivery.objects.bulk_update(changed, ["picks"])
            changed = []
    Delivery.objects.bulk_update(changed, ["picks"])
    for pk, offered in Edition.objects.exclude(offered=None).values_list("pk", "offered"):
        # Here a reason is one value: the sentence, or the typed list.
        converted = [reason([item["reason"]] if isinstance(item["reason"], str) else item["reason"]) for item in offered]
        if offered and converted[0] is not None:
            new = [{**item, "reason": r[0] if len(r) == 1 else r} for item, r in zip(offered, converted)]
            Edition.objects.filter(pk=pk).update(offered=new)


def to_typed(apps, schema_editor):
    Paper = apps.get_model("papers", "Paper")
    ids, typed = {}, {}

    def paper_ids(title):
        if title not in ids:
            found = list(Paper.objects.filter(title=title).values_list("pk", flat=True)[:2])
            ids[title] = str(found[0]) if len(found) == 1 else ""
        return ids[title]

    def reason(rest):
        if len(rest) != 1:
            return None
        if rest[0] not in typed:  # a few thousand distinct sentences at most
            typed[rest[0]] = _typed(rest[0], paper_ids)
        return typed[rest[0]]

    _convert(apps, reason)


def to_english(apps, schema_editor):
    _convert(apps, lambda rest: [_worded(rest)] if len(rest) > 1 else None)


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0016_subscriber_search_text_and_paused"),
        ("papers", "0001_initial"),
    ]

    operations = [migrations.RunPython(to_typed, to_english, elidable=False)]

"""Editors' notes: a little inline markup is allowed; everything else is stripped."""

import nh3
from django.core.exceptions import ValidationError

NOTE_MAX_LENGTH = 280
NOTE_TAGS = {"a", "b", "strong", "i", "em", "code"}


def sanitize_note(note):
    return nh3.clean(
        (note or "").strip(),
        tags=NOTE_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"https", "http"},
        link_rel="noopener nofollow",
    )


def validate_note(note):
    if len(nh3.clean(sanitize_note(note), tags=set())) > NOTE_MAX_LENGTH:
        raise ValidationError(f"An editor's note may be at most {NOTE_MAX_LENGTH} characters.")

"""Editors' notes: a little inline markup is allowed; everything else is stripped."""

import html
import re

import nh3
from django.core.exceptions import ValidationError

NOTE_MAX_LENGTH = 280
NOTE_MAX_STORED = 1000  # the column: markup included
NOTE_TAGS = {"a", "b", "strong", "i", "em", "code"}
LINK_REL = "noopener nofollow"


def sanitize_note(note):
    return nh3.clean(
        (note or "").strip(),
        tags=NOTE_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"https", "http"},
        link_rel=LINK_REL,
    )


def note_length(note):
    """The characters readers see (markup and its addresses do not count): the one limit,
    counted alike by the Today page's counter."""
    return len(html.unescape(nh3.clean(sanitize_note(note), tags=set())))


def validate_note(note):
    if note_length(note) > NOTE_MAX_LENGTH:
        raise ValidationError(f"An editor's note may be at most {NOTE_MAX_LENGTH} characters.")
    if len(sanitize_note(note)) > NOTE_MAX_STORED:
        raise ValidationError(f"An editor's note may hold at most {NOTE_MAX_STORED} characters with its markup: use fewer links.")


def note_source(note):
    """A stored note as the editor would type it, to edit: without the rel sanitising adds,
    and with &amp; and the like written plainly where that reads back to the same note."""
    source = (note or "").replace(f' rel="{LINK_REL}"', "")
    plain = html.unescape(source)
    return plain if sanitize_note(plain) == sanitize_note(source) else source


def cleaned_away(note):
    """Whether sanitising removed something from the note (the editor should see what is kept).
    What it only adds or spells differently (the links' rel, &amp;) does not count."""
    kept = sanitize_note(note).replace(f' rel="{LINK_REL}"', "")
    return html.unescape(kept) != html.unescape((note or "").strip())


def note_as_text(note):
    """A note for the plain-text part of a mail: markup dropped, each link's address kept."""
    with_urls = re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', _link_text, sanitize_note(note), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", with_urls))


def _link_text(match):
    url, label = html.unescape(match.group(1)), match.group(2)
    return url if html.unescape(re.sub(r"<[^>]+>", "", label)).strip() == url else f"{label} ({url})"

"""Editors' notes: a little inline markup is allowed; everything else is stripped."""

import html
import re

import nh3
from django.core.exceptions import ValidationError
from django.utils.html import urlize

NOTE_MAX_LENGTH = 280
NOTE_MAX_STORED = 1000  # the column: markup included
NOTE_TAGS = {"a", "b", "strong", "i", "em", "code"}
LINK_REL = "noopener nofollow"


# What nh3 leaves of a link whose address it refused (javascript:, data:, mailto:...).
DEAD_LINK = re.compile(rf'<a rel="{LINK_REL}">(.*?)</a>', re.S)
LINK = re.compile(r"(<a\b.*?</a>)", re.S)
TAG = re.compile(r"(<[^>]+>)")


def _clean(note):
    kept = nh3.clean(note, tags=NOTE_TAGS, attributes={"a": {"href"}}, url_schemes={"https", "http"}, link_rel=LINK_REL)
    return DEAD_LINK.sub(r"\1", kept)  # its words, not a dead blue word


def _linkify(fragment):
    """Bare addresses in the text (not in a link already) as links: Django's urlize, given
    text nodes only, as it does not read markup."""
    pieces = [piece if piece.startswith("<") else urlize(piece, autoescape=False) for piece in TAG.split(fragment)]
    return "".join(pieces)


def sanitize_note(note):
    """The note as stored and shown: allowed markup kept; a link to an unsafe address (any
    scheme but http and https) left as its words; bare http(s) addresses made links."""
    kept = LINK.split(_clean((note or "").strip()))
    return _clean("".join(piece if LINK.fullmatch(piece) else _linkify(piece) for piece in kept))


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
    bare addresses bare, &amp; and the like written plainly, where that reads back the same."""
    source = (note or "").replace(f' rel="{LINK_REL}"', "")
    bare = re.sub(r'<a href="([^"]*)">\1</a>', r"\1", source)
    candidates = [html.unescape(bare), bare, html.unescape(source)]
    return next((c for c in candidates if sanitize_note(c) == sanitize_note(source)), source)


def cleaned_away(note):
    """Whether sanitising removed something from the note (the editor should see what is kept).
    What it only adds or spells differently (the links' rel, &amp;) does not count."""
    kept = _clean((note or "").strip()).replace(f' rel="{LINK_REL}"', "")
    return html.unescape(kept) != html.unescape((note or "").strip())


def note_as_text(note):
    """A note for the plain-text part of a mail: markup dropped, each link's address kept."""
    with_urls = re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', _link_text, sanitize_note(note), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", with_urls))


def _link_text(match):
    url, label = html.unescape(match.group(1)), match.group(2)
    return url if html.unescape(re.sub(r"<[^>]+>", "", label)).strip() == url else f"{label} ({url})"

from django import template

from papers.notes import note_as_text

register = template.Library()


@register.filter
def note_text(note):
    """An editor's note as plain text, links spelled out (for the text part of a mail)."""
    return note_as_text(note)

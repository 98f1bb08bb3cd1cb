import textwrap

from django import template
from django.template.defaultfilters import stringfilter
from django.utils.safestring import SafeData, mark_safe

from newsletter import outline, reasons

register = template.Library()


@register.filter(is_safe=True)
@stringfilter
def typeset(text):
    result = outline.typeset(text)
    return mark_safe(result) if isinstance(text, SafeData) else result


@register.filter(is_safe=True)
@stringfilter
def editor_note(note):
    result = outline.editor_note(note)
    return mark_safe(result) if isinstance(note, SafeData) else result


@register.filter
def said(reason):
    """How a pick's reason reads (newsletter.reasons.said)."""
    return reasons.said(reason)


@register.filter
@stringfilter
def indented(text, width):
    """Wrapped for a plain-text part, lines after the first indented like a list item's."""
    return textwrap.fill(" ".join(text.split()), width=int(width), subsequent_indent="   ", break_long_words=False)

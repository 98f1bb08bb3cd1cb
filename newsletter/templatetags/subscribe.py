from django import template

from newsletter.forms import SubscribeForm

register = template.Library()


@register.inclusion_tag("newsletter/_subscribe_box.html", takes_context=True)
def subscribe_box(context):
    """The Subscribe form, placed on any page (the papers pages keep a slot for it)."""
    return {"form": SubscribeForm(), "request": context.get("request"), "csrf_token": context.get("csrf_token")}

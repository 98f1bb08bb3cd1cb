from django import template

from newsletter.forms import SubscribeForm

register = template.Library()


@register.inclusion_tag("newsletter/_subscribe_box.html", takes_context=True)
def subscribe_box(context):
    """The Subscribe form, placed on any page (the papers pages keep a slot for it)."""
    return {"form": SubscribeForm(), "request": context.get("request"), "csrf_token": context.get("csrf_token")}


@register.inclusion_tag("newsletter/_subscribe_quick.html", takes_context=True)
def subscribe_quick(context):
    """The address alone, for the top of a phone's screen: topics can be chosen later."""
    return {"request": context.get("request"), "csrf_token": context.get("csrf_token")}

from django import template

from newsletter.tracking import COMPLAINT_PAUSE, COMPLAINT_WARN, complaint_rate, hard_bounces, sending_paused

register = template.Library()


@register.inclusion_tag("admin/newsletter/sending_health.html")
def sending_health():
    complaints, sent, rate = complaint_rate()
    return {
        "complaints": complaints,
        "bounces": hard_bounces(),
        "sent": sent,
        "rate": rate * 100,
        "warn": rate > COMPLAINT_WARN,
        "paused": sending_paused(),
        "pause_at": COMPLAINT_PAUSE * 100,
    }

from django import template

from newsletter.desk import day_summary as summary

register = template.Library()


@register.inclusion_tag("admin/newsletter/day_summary.html")
def day_summary():
    return summary()

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from newsletter.archive import edition_items
from newsletter.models import Edition


class EditionsFeed(Feed):
    feed_type = Atom1Feed
    description_template = "newsletter/edition_feed_item.html"

    def title(self):
        return f"{settings.SITE_NAME}: daily editions"

    def link(self):
        return reverse("newsletter:editions")

    def subtitle(self):
        return "Trending papers, as featured and ranked for every subscriber's digest."

    def items(self):
        return Edition.objects.all()[:30]

    def item_title(self, edition):
        return f"{settings.SITE_NAME} — {edition.date:%A %d %B %Y}"

    def item_pubdate(self, edition):
        return edition.created_at

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["items"] = edition_items(kwargs["item"])
        return ctx

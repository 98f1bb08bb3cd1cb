from django.conf import settings
from django.contrib.syndication.views import Feed
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from papers.models import Paper, Topic


class TopicFeed(Feed):
    """The latest day's papers on one topic, most upvoted first."""

    feed_type = Atom1Feed

    def get_object(self, request, slug):
        return get_object_or_404(Topic, slug=slug)

    def title(self, topic):
        return f"{settings.SITE_NAME}: {topic.name}"

    def link(self, topic):
        return reverse("papers:latest") + f"?topic={topic.slug}"

    def subtitle(self, topic):
        return topic.description or f"Trending papers on {topic.name}."

    def items(self, topic):
        day = Paper.objects.latest_day()
        return Paper.objects.listed_on(day).filter(topics=topic).trending()[:50] if day else []

    def item_title(self, paper):
        return paper.title

    def item_description(self, paper):
        return f"{paper.authors_display} — {paper.abstract[:600]}"

    def item_author_name(self, paper):
        return paper.authors_display

    def item_link(self, paper):
        return paper.get_absolute_url()

    def item_pubdate(self, paper):
        return paper.created_at

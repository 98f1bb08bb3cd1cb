from django.shortcuts import get_object_or_404, render

from papers.models import Feature, Paper, Topic


def _topic_or_404(slug):
    return get_object_or_404(Topic, slug=slug) if slug else None


def day(request, day=None):
    topics = list(Topic.objects.all())
    topic = _topic_or_404(request.GET.get("topic"))
    day = day or Paper.objects.latest_day()
    papers = Paper.objects.listed_on(day).trending().prefetch_related("topics") if day else Paper.objects.none()
    if topic:
        papers = papers.filter(topics=topic)
    days = Paper.objects.listing_days()
    featured = {f.paper_id: f for f in Feature.objects.filter(day=day)} if day else {}
    ctx = {
        "day": day,
        "papers": [(p, featured.get(p.id)) for p in papers],
        "topics": topics,
        "topic": topic,
        "previous_day": days.filter(listed_on__lt=day).first() if day else None,
        "next_day": days.filter(listed_on__gt=day).last() if day else None,
    }
    return render(request, "papers/day.html", ctx)


def _detail(request, paper):
    ctx = {
        "paper": paper,
        "features": paper.features.all()[:5],
        "topics": paper.topics.all(),
        "similar": paper.similar(n=5),
    }
    return render(request, "papers/detail.html", ctx)


def detail(request, arxiv_id):
    return _detail(request, get_object_or_404(Paper, arxiv_id=arxiv_id))


def detail_by_pk(request, pk):
    return _detail(request, get_object_or_404(Paper, pk=pk, arxiv_id=None))

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
    features = list(Feature.objects.filter(day=day).select_related("paper").prefetch_related("paper__topics")) if day else []
    if topic:
        features = [f for f in features if topic in f.paper.topics.all()]
    # The day's features first, in the editor's order, then the rest by upvotes.
    pinned = [(f.paper, f) for f in features]
    pinned_ids = {f.paper_id for f in features}
    ctx = {
        "day": day,
        "papers": pinned + [(p, None) for p in papers if p.id not in pinned_ids],
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

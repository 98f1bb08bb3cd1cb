from django.urls import path

from papers import views
from papers.feeds import TopicFeed

app_name = "papers"

urlpatterns = [
    path("", views.day, name="latest"),
    path("day/<date:day>/", views.day, name="day"),
    path("topics/<slug:slug>/feed/", TopicFeed(), name="topic_feed"),
    path("papers/id/<int:pk>/", views.detail_by_pk, name="detail_by_pk"),
    path("papers/<path:arxiv_id>/", views.detail, name="detail"),
]

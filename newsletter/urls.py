from django.urls import path, re_path

from newsletter import views
from newsletter.feeds import EditionsFeed

app_name = "newsletter"

urlpatterns = [
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/done/", views.subscribe_done, name="subscribe_done"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm/<str:token>/resend/", views.confirm_resend, name="confirm_resend"),
    path("preferences/", views.send_link, name="send_link"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/data/", views.data_link, name="data_link"),
    path("data/<str:token>/", views.my_data, name="data"),
    path("data/<str:token>/export/", views.preferences_export, name="export"),
    path("data/<str:token>/delete/", views.preferences_delete, name="delete"),
    path("data/<str:token>/resend/", views.data_resend, name="data_resend"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    re_path(r"^f/(?P<token>[^/]+)/(?P<paper_id>[0-9]+)/(?P<vote>more|less|why)/$", views.feedback, name="feedback"),
    path("editions/", views.editions, name="editions"),
    path("editions/feed/", EditionsFeed(), name="editions_feed"),
    path("editions/<date:day>/", views.edition, name="edition"),
    path("editions/<date:day>/<str:token>/", views.edition_copy, name="edition_copy"),
]

from django.contrib import admin
from django.urls import include, path, register_converter

from config.converters import IsoDateConverter
from config.health import HealthView
from newsletter import metrics, webhooks

register_converter(IsoDateConverter, "date")

admin.site.site_header = "Paperboy editors"
admin.site.site_title = "Paperboy"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("anymail/", include((webhooks.urlpatterns, "anymail"))),
    path("", include("newsletter.urls")),
    path("", include("papers.urls")),
]

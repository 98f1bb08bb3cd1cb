from django.contrib import admin
from django.urls import include, path, register_converter

from config.converters import IsoDateConverter
from newsletter import webhooks

register_converter(IsoDateConverter, "date")

admin.site.site_header = "Paperboy editors"
admin.site.site_title = "Paperboy"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("anymail/", include((webhooks.urlpatterns, "anymail"))),
    path("", include("newsletter.urls")),
    path("", include("papers.urls")),
]

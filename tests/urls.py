"""URLs for the admin tests: ``override_settings(ROOT_URLCONF="tests.urls")``."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]

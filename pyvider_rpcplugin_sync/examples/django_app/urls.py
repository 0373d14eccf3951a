"""URLs of the example Django project."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("kv/<str:key>", views.kv, name="kv"),
    path("health", views.health, name="health"),
]

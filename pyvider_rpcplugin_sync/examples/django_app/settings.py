"""Settings of the example Django project: an API with no database, sessions or templates."""

from __future__ import annotations

import os

# An example: set DJANGO_SECRET_KEY for anything but a local demo.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-key-for-the-kv-demo")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "pyvider_rpcplugin_sync.examples.django_app.urls"
WSGI_APPLICATION = "pyvider_rpcplugin_sync.examples.django_app.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"

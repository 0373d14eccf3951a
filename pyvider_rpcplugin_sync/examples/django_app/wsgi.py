"""WSGI entry point: ``gunicorn pyvider_rpcplugin_sync.examples.django_app.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault(
    "DJANGO_SETTINGS_MODULE", "pyvider_rpcplugin_sync.examples.django_app.settings"
)

application = get_wsgi_application()

"""A minimal Django project whose views use the KV example plugin through a SharedPlugin.

``settings`` (no database, no apps), ``urls``, ``views`` and ``wsgi``. The plugin
starts at the first request that needs it, never at import::

    DJANGO_SETTINGS_MODULE=pyvider_rpcplugin_sync.examples.django_app.settings \\
        python -m django runserver 127.0.0.1:8000
    gunicorn --preload --workers 2 pyvider_rpcplugin_sync.examples.django_app.wsgi
"""

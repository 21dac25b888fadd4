"""WSGI entry point: pages and the API under gunicorn (gthread) in production. Websockets are ASGI's (``ocenter.asgi``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocenter.settings")

application = get_wsgi_application()

from ocenter.lib.warm import warm  # noqa: E402 (Django is set up above)

warm()

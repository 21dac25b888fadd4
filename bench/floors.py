"""The floors ``bench/run.py --floors`` measures: what Django itself costs here, below any oCenter code.

Served with every middleware of ``ocenter.settings`` (``bench.floor_settings`` only adds these routes):
a view that answers a constant, and one that runs ``SELECT 1``.
"""

from django.db import connection
from django.http import HttpResponse
from django.urls import path

from ocenter.urls import urlpatterns as ocenter_urlpatterns


def constant(request):
    return HttpResponse(b"ok", content_type="text/plain")


def select_one(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path("floor/constant", constant), path("floor/select-1", select_one), *ocenter_urlpatterns]

"""The shell around the apps' pages: home, health."""

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import redirect, render


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if request.user.is_staff:
        return redirect("pools:list")
    return render(request, "home.html", status=200)


def healthz(request):
    """Liveness for a load balancer: the process answers and the database too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})

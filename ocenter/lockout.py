"""What a locked-out login is answered (django-axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After, a problem document
under /api/, a page elsewhere, saying when to try again."""

from axes.backends import AxesStandaloneBackend
from django.shortcuts import render

from ocenter.api import API_PREFIX, cool_off, locked_out_problem


def locked_out(request, original_response=None, credentials=None):
    if request.path.startswith(API_PREFIX):
        return locked_out_problem(request)
    seconds, minutes = cool_off(request)
    response = render(request, "429.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(seconds)
    return response


class LoginAttemptsBackend(AxesStandaloneBackend):
    """django-axes' check of every login over HTTP; a login with no request (a shell, a test client) is not one to count."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)

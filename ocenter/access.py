"""Who may see what: decorators and helpers every view goes through."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def staff_required(view):
    """Platform staff only: anonymous users go to login, others get 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("The console is for platform staff.")
        return view(request, *args, **kwargs)

    return wrapper

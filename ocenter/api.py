"""
What every API endpoint shares: problem documents (RFC 9457) for every error,
page-number pagination with a stable order, and the base for viewsets.
"""

from http import HTTPStatus

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ocenter.errors import DomainError

PROBLEM_TYPE_BASE = "https://ocenter.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def _flatten(detail, prefix="") -> dict:
    """DRF's nested error detail as ``{"field": ["message", …]}`` (nested fields dotted)."""
    if isinstance(detail, dict):
        errors = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            errors.update(_flatten(value, name))
        return errors
    if isinstance(detail, list) and detail and all(isinstance(item, (dict, list)) for item in detail):
        errors = {}
        for index, item in enumerate(detail):
            errors.update(_flatten(item, f"{prefix}[{index}]" if prefix else str(index)))
        return errors
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


def problem(status_code: int, title: str, detail: str, *, type_: str = "about:blank", **members) -> Response:
    body = {"type": type_, "title": title, "status": status_code, "detail": detail, **members}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def exception_handler(exc, context):
    """Every error as ``application/problem+json``, with per-field messages for invalid input."""
    if isinstance(exc, DomainError):
        members = dict(exc.extra)
        code = members.pop("code", exc.code)
        if exc.field:
            members["errors"] = {exc.field: [exc.detail]}
        return problem(exc.status, exc.title, exc.detail, type_=PROBLEM_TYPE_BASE + code, **members)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handler logs it
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        fields = ", ".join(errors)
        first = next(iter(errors.values()))[0]
        detail = f"{first}" if len(errors) == 1 and "non_field_errors" in errors else f"Invalid input in: {fields}."
        body = {"type": PROBLEM_TYPE_BASE + "invalid", "title": "Invalid input", "status": 400, "detail": detail, "errors": errors}
    else:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = {
            "type": PROBLEM_TYPE_BASE + getattr(exc, "default_code", "error"),
            "title": _title(response.status_code),
            "status": response.status_code,
            "detail": str(detail),
        }
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _title(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 500); every list is ordered on a unique key last, so pages never shift."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

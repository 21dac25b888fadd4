"""
What every API endpoint shares: problem documents (RFC 9457) for every error,
strict input (unknown fields and bad query values are 400s, not ignored),
page-number pagination with a stable order, and what the schema says of them.

Everything under ``/api/`` answers JSON: the exception handler turns what
DRF sees into problems, ``ProblemMiddleware`` turns what Django answers
outside DRF (an unknown path, a body too large, a 500) into problems too.
"""

import difflib
import logging
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import unquote

from axes.exceptions import AxesBackendPermissionDenied
from axes.helpers import get_cool_off
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ocenter.audit import audit_attempt
from ocenter.errors import DomainError
from ocenter.lib.paging import COUNT_CAP, CappedPaginator
from ocenter.parsers import NUL, NUL_MESSAGE

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://ocenter.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PREFIX = "/api/"


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


def _body(status_code: int, detail: str, *, code: str, title: str | None = None, **members) -> dict:
    return {"type": PROBLEM_TYPE_BASE + code, "title": title or _title(status_code), "status": status_code, "detail": detail, **members}


def problem(status_code: int, title: str, detail: str, *, type_: str = "about:blank", **members) -> Response:
    body = {"type": type_, "title": title, "status": status_code, "detail": detail, **members}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def cool_off(request) -> tuple[int, int]:
    """(seconds, whole minutes, at least one) a username locked out from this address (django-axes) waits."""
    left = get_cool_off(request)
    seconds = int(left.total_seconds()) if left else 0
    return seconds, max(1, (seconds + 59) // 60)


def locked_out_problem(request) -> JsonResponse:
    """429 for a username locked out from this address (django-axes), with Retry-After: the cool-off left."""
    seconds, minutes = cool_off(request)
    detail = f"Too many wrong passwords for this username from your address; try again in {minutes} min."
    body = _body(429, detail, code="locked_out", title="Too many failed logins", retry_after=seconds)
    response = JsonResponse(body, status=429, content_type=PROBLEM_CONTENT_TYPE)
    response["Retry-After"] = str(seconds)
    return response


def exception_handler(exc, context):
    """Every error as ``application/problem+json``, with per-field messages for invalid input."""
    if isinstance(exc, DomainError):
        members = dict(exc.extra)
        code = members.pop("code", exc.code)
        if exc.field:
            members["errors"] = {exc.field: [exc.detail]}
        return problem(exc.status, exc.title, exc.detail, type_=PROBLEM_TYPE_BASE + code, **members)
    if isinstance(exc, AxesBackendPermissionDenied):  # a password tried too often (django-axes): 429, not 403
        return locked_out_problem(context["request"]._request)
    if isinstance(exc, RequestDataTooBig):
        exc = TooLarge()
    elif isinstance(exc, (Http404, ObjectDoesNotExist)):  # (a row removed by another request meanwhile, too)
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django logs it, and ProblemMiddleware answers a problem
    if response.status_code in (401, 403):  # a refused action is audited (who, from where, what it tried)
        request = context["request"]
        audit_attempt(request=request._request, action="access.refused", user=getattr(request, "_user", None),
                      changes={"status": response.status_code, "detail": str(exc.detail)[:300]})  # fmt: skip
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        fields = ", ".join(errors)
        first = next(iter(errors.values()))[0]
        detail = f"{first}" if len(errors) == 1 and "non_field_errors" in errors else f"Invalid input in: {fields}."
        body = _body(400, detail, code="invalid", title="Invalid input", errors=errors)
    else:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        body = _body(response.status_code, str(detail), code=getattr(exc, "default_code", "error"))
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _title(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


class TooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self):
        super().__init__(f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; send less at once")


class ProblemMiddleware:
    """Outermost: any error under ``/api/`` that is not JSON already (Django's 404, 400, 413 or 500 pages) becomes a problem.

    A URL with a NUL character in it is refused here, for pages too: PostgreSQL cannot even compare one.
    """

    MESSAGES = {
        400: "the request could not be read; check its headers and body",
        404: "no API endpoint at {path}; the schema at /api/v1/schema/ lists them",
        413: "the body is too large; send less at once",
        500: "oCenter failed to answer this request; the error is logged, and trying again may work",
    }

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if NUL in request.path or NUL in unquote(request.META.get("QUERY_STRING", "")):  # no column could hold it: not even looked up
            if not request.path.startswith(API_PREFIX):
                return HttpResponseBadRequest(f"the URL: {NUL_MESSAGE}", content_type="text/plain")
            return JsonResponse(_body(400, f"the URL: {NUL_MESSAGE}", code="invalid", title="Invalid input"), status=400,
                                content_type=PROBLEM_CONTENT_TYPE)  # fmt: skip
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if "json" in response.get("Content-Type", ""):
            return response
        status = response.status_code
        message = self.MESSAGES.get(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "error")
        problem_response = JsonResponse(
            _body(status, message.format(path=request.path), code=_title(status).lower().replace(" ", "_")),
            status=status,
            content_type=PROBLEM_CONTENT_TYPE,
        )
        for header in ("Allow", "WWW-Authenticate", "Retry-After"):
            if header in response:
                problem_response[header] = response[header]
        return problem_response


def api_not_found(request, path=""):
    """Every path under ``/api/v1/`` that names no endpoint, in debug mode too (no page listing the routes)."""
    return JsonResponse(
        _body(404, ProblemMiddleware.MESSAGES[404].format(path=request.path), code="not_found"),
        status=404,
        content_type=PROBLEM_CONTENT_TYPE,
    )


# --- input ---------------------------------------------------------------------------


class StrictInput:
    """A serializer that refuses fields it does not know, naming them (and the field meant, when one is close)."""

    # What a form in the browsable API sends besides its fields.
    FORM_KEYS = frozenset({"csrfmiddlewaretoken"})

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            known = set(self.fields)
            errors = {}
            for name in sorted(set(data) - known - self.FORM_KEYS):
                close = difflib.get_close_matches(name, [n for n, f in self.fields.items() if not f.read_only], n=1)
                errors[name] = ["unknown field" + (f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(known))}")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class Serializer(StrictInput, serializers.Serializer):
    """The base of the API's plain serializers."""


class ModelSerializer(StrictInput, serializers.ModelSerializer):
    """The base of the API's model serializers."""


def _whole_number(raw: str) -> bool:
    """ASCII digits only ("²" is a digit to ``str.isdigit``, not to ``int``)."""
    return raw.isascii() and raw.isdigit()


class Pagination(PageNumberPagination):
    """``?page=N&page_size=M`` (at most 500); every list is ordered on a unique key last, so pages never shift.

    A ``page`` or ``page_size`` that is not a whole number in range is a 400, not quietly replaced.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    django_paginator_class = CappedPaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_capped"] = self.page.paginator.capped
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count"]["description"] = f"rows in the list, counted up to {COUNT_CAP:,}"
        schema["properties"]["count_capped"] = {
            "type": "boolean",
            "description": f"true: more than {COUNT_CAP:,} rows (narrow the list to count them)",
        }
        return schema

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _whole_number(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise serializers.ValidationError({self.page_size_query_param: [f"a whole number from 1 to {self.max_page_size}"]})
        return int(raw)

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param, "1")
        if raw != "last" and (not _whole_number(raw) or int(raw) < 1):
            raise serializers.ValidationError({self.page_query_param: ["a whole number from 1, or 'last'"]})
        return raw


# --- what the schema says --------------------------------------------------------------

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong and what to change.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "per field: what is wrong with it",
        },
    },
    "required": ["type", "title", "status", "detail"],
}
PROBLEMS = {
    "400": "Invalid input: ``errors`` names each field and what to change",
    "401": "No credentials, or ones that are not valid",
    "403": "Not allowed for this user, token or role (or refused by a quota or budget)",
    "404": "No such object, or not one this user may see",
    "405": "This method is not allowed here",
    "409": "It clashes with the current state",
    "413": "The body is too large",
    "415": "The body is not JSON",
    "422": "Well formed, but it contradicts what was asked before",
}
# Problems only a write can meet (a delete can clash with the state too: the last owner, a project still in use).
WRITES_ONLY = {"409", "413", "415", "422"}


def schema_postprocess(result, generator, request, public):
    """drf-spectacular hook: every operation documents its problem responses; request bodies refuse unknown fields."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete") or not path.startswith("/api/v1/"):
                continue
            for status, description in PROBLEMS.items():
                if status in WRITES_ONLY and method not in ("post", "put", "patch", "delete"):
                    continue
                operation["responses"].setdefault(status, {"description": description, "content": {PROBLEM_CONTENT_TYPE: {"schema": ref}}})
    for name, schema in schemas.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False
    return result

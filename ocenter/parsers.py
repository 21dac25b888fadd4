"""
The API's parsers (their own module: DRF reads its parser classes from settings while its views load).

Both refuse what no field can store: JSON nested deeper than Python reads,
and NUL characters, which PostgreSQL's text columns cannot hold.
"""

from rest_framework import exceptions, parsers

NUL = "\x00"
NUL_MESSAGE = "text may not contain NUL (\\u0000) characters; remove them"


def has_nul(value) -> bool:
    """Whether a string anywhere in ``value`` (parsed JSON, or a form's values) holds a NUL."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with clear 400s for JSON nested too deep to read and for NUL characters (in production too)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("the JSON is nested too deeply to read; flatten it") from None
        if has_nul(data):
            raise exceptions.ParseError(NUL_MESSAGE)
        return data


def _check_form(data):
    if any(has_nul([key, *values]) for key, values in data.lists()):
        raise exceptions.ParseError(NUL_MESSAGE)


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing NUL characters."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _check_form(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser (the browsable API posts its forms so), refusing NUL characters in fields."""

    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        _check_form(parsed.data)
        return parsed

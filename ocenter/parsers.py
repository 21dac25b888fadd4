"""The API's JSON parser (its own module: DRF reads its parser classes from settings while its views load)."""

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with a clear 400 for JSON nested deeper than Python will read (in production too)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("the JSON is nested too deeply to read; flatten it") from None

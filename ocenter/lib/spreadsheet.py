"""
CSV exports that a spreadsheet opens as text: a cell of text that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with
``'``, so no typed name, label or reason runs as a formula (OWASP's advice
for CSV injection). Figures (numbers, times) are written as they are.

Rows are streamed as they are read: a long list is never held whole.
"""

import csv
from datetime import datetime
from decimal import Decimal

from django.http import StreamingHttpResponse

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# An export holds at most this many rows (a filter narrows it further).
MAX_ROWS = 1_000_000


def cell(value) -> str | int | float | Decimal:
    """``value`` as a cell no spreadsheet reads as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    """A download of ``header`` and ``rows`` (an iterable of sequences), each cell made safe by ``cell``."""
    writer = csv.writer(_Echo())

    def lines():
        yield "\ufeff" + writer.writerow(header)  # the BOM: spreadsheets read UTF-8 (Chinese names) as UTF-8
        for count, row in enumerate(rows):
            if count == MAX_ROWS:
                break
            yield writer.writerow([cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

"""
Charts drawn by the server, as SVG geometry for ``includes/_line_chart.html``
(no chart library, no script): lines over time inside their box, a y axis
with its scale, and a time on the x axis every fifth of the span.
"""

from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

from django.utils import timezone
from django.utils.translation import gettext

# The view box: the y axis's labels left of LEFT, the times below BASE.
WIDTH, LEFT, RIGHT, TOP, BASE = 600, 48, 592, 8, 110
X_TICKS = 5


def line_chart(lines: dict[str, list[tuple[datetime, float]]], *, since: datetime, until: datetime, top: float | None = None,
               unit: str = "") -> dict:  # fmt: skip
    """``lines``: ``{name: [(moment, value), …]}`` oldest first; ``top``: the y axis's top (the largest value, when None).

    Each line becomes a polyline's points, broken where a stretch of more than three of its usual steps has no point.
    """
    span = max((until - since).total_seconds(), 1.0)
    highest = max((v for points in lines.values() for _, v in points if v is not None), default=0.0)
    top = top or highest or 1.0

    def x(moment):
        return round(LEFT + (moment - since).total_seconds() / span * (RIGHT - LEFT), 1)

    def y(value):
        return round(BASE - min(value, top) / top * (BASE - TOP), 1)

    drawn = []
    for index, (name, points) in enumerate(lines.items()):
        points = [(m, v) for m, v in points if v is not None and since <= m <= until]
        steps = sorted((b[0] - a[0]).total_seconds() for a, b in pairwise(points))
        gap = 3 * steps[len(steps) // 2] if steps else span
        runs, run, last = [], [], None
        for moment, value in points:
            if last is not None and (moment - last).total_seconds() > gap:
                runs.append(run)
                run = []
            run.append(f"{x(moment)},{y(value)}")
            last = moment
        if run:
            runs.append(run)
        drawn.append({"name": name, "series": index, "runs": [" ".join(r) for r in runs], "last": points[-1][1] if points else None})
    step = (until - since) / X_TICKS
    ticks = [{"x": x(since + step * i), "at": since + step * i} for i in range(X_TICKS + 1)]
    return {
        "lines": drawn,
        "x_ticks": ticks,
        "hours": until - since <= timedelta(days=2),  # times of day on the axis; dates beyond
        "y_ticks": [{"y": y(v), "value": v} for v in (0, top / 2, top)],
        "unit": unit,
        "left": LEFT,
        "right": RIGHT,
        "top_y": TOP,
        "base": BASE,
        "width": WIDTH,
        "empty": not any(line["runs"] for line in drawn),
    }


def daily_lines(rows, key: str, most: int, *, since: datetime, until: datetime) -> dict:
    """Amounts a day (``billing.selectors.usage_summary`` rows by day and ``key``) as ``line_chart`` lines: the ``most``
    largest each a line of its own, the rest summed as one; each day's point at its noon, kept within ``[since, until]``
    (today's, before its noon, at ``until``; the first day's, after its noon, at ``since``)."""
    totals = defaultdict(Decimal)
    for row in rows:
        totals[str(row[key])] += row["amount"]
    named = set(sorted(totals, key=totals.get, reverse=True)[:most])
    lines = defaultdict(lambda: defaultdict(Decimal))
    for row in rows:
        lines[str(row[key]) if str(row[key]) in named else gettext("the others")][row["day"]] += row["amount"]
    zone = timezone.get_current_timezone()

    def at(day):
        return min(max(datetime.combine(day, time(12), zone), since), until)

    return {name: [(at(day), float(amount)) for day, amount in sorted(days.items())] for name, days in lines.items()}

"""Server-drawn charts: a day's amount is a point inside the chart's span whatever the time of day."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from ocenter.charts import daily_lines, line_chart


@pytest.mark.parametrize("hour", [0, 7, 11, 12, 13, 23])
def test_the_days_spend_is_drawn_at_any_hour_of_the_day(settings, hour):
    settings.TIME_ZONE = "UTC"
    now = datetime(2026, 12, 3, hour, 30, tzinfo=UTC)
    since = now - timedelta(days=1)
    rows = [{"day": date(2026, 12, 2), "tenant": "acme", "amount": Decimal("2.00")},
            {"day": date(2026, 12, 3), "tenant": "acme", "amount": Decimal("3.00")}]  # fmt: skip
    lines = daily_lines(rows, "tenant", 5, since=since, until=now)
    moments = [m for m, _ in lines["acme"]]
    assert [v for _, v in lines["acme"]] == [2.0, 3.0]
    assert all(since <= m <= now for m in moments), moments  # today's point before its noon is now; yesterday's never before the span
    chart = line_chart(lines, since=since, until=now)
    assert not chart["empty"] and len(chart["lines"][0]["runs"][0].split()) == 2

"""
Pricing arithmetic, pure Decimal, never float.

Rounding rule: a usage record's amount is exact to 6 decimal places (half
up); a statement line is the sum of its records rounded half up to the cent;
a statement's total is the sum of its lines, so it adds up to the cent.
"""

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from ocenter.lib.units import COMPUTE_UNITS_PER_GPU

RECORD_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")
HOUR = Decimal(3600)
MIB_PER_GIB = Decimal(1024)
UNITS_PER_GPU = Decimal(COMPUTE_UNITS_PER_GPU)


def seconds_between(start: datetime, end: datetime) -> Decimal:
    """Exact seconds, to the microsecond."""
    delta = end - start
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)


def amount(*, compute_units: int, memory_mib: int, seconds: Decimal, compute_gpu_hour: Decimal, memory_gib_hour: Decimal) -> Decimal:
    """What one slice costs over ``seconds``: a 25-unit slice pays a quarter of a GPU-hour per hour."""
    compute = Decimal(compute_units) / UNITS_PER_GPU * compute_gpu_hour
    memory = Decimal(memory_mib) / MIB_PER_GIB * memory_gib_hour
    return ((compute + memory) * seconds / HOUR).quantize(RECORD_PLACES, rounding=ROUND_HALF_UP)


def hourly(*, compute_units: int, memory_mib: int, compute_gpu_hour: Decimal, memory_gib_hour: Decimal) -> Decimal:
    """The price of one slice per hour (unrounded)."""
    return Decimal(compute_units) / UNITS_PER_GPU * compute_gpu_hour + Decimal(memory_mib) / MIB_PER_GIB * memory_gib_hour


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def cut(start: datetime, end: datetime, boundaries) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut at every boundary strictly inside it."""
    points = sorted({b for b in boundaries if start < b < end})
    edges = [start, *points, end]
    return list(pairwise(edges))


def midnights(start: datetime, end: datetime, tz) -> list[datetime]:
    """Every local midnight strictly inside ``[start, end)``."""
    local = start.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    result = []
    while True:
        day = (day + timedelta(days=1, hours=2)).replace(hour=0)  # robust across DST
        moment = day.astimezone(start.tzinfo)
        if moment >= end:
            return result
        result.append(moment)


def month_start(moment: datetime, tz) -> datetime:
    local = moment.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(first: datetime) -> datetime:
    return (first.replace(day=28) + timedelta(days=4)).replace(day=1)

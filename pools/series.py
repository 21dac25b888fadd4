"""
Compact time series, pure: a window of points packed into bytes.

A row holds one subject's window: an hour of one-minute points, or a day of
one-hour points. A percentage is one byte (255: no point that minute), MiB
four (0xFFFFFFFF: none), a count of processes one byte. An hour of a GPU's
utilization and memory is 300 bytes; the row is written in place each minute.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

MINUTE, HOUR = "minute", "hour"
WIDTH = {MINUTE: 60, HOUR: 24}  # points per row
STEP = {MINUTE: timedelta(minutes=1), HOUR: timedelta(hours=1)}
SPAN = {MINUTE: timedelta(hours=1), HOUR: timedelta(days=1)}  # what one row covers
NO_BYTE = 255
NO_MIB = 0xFFFFFFFF


def window(at: datetime, resolution: str) -> tuple[datetime, int]:
    """(the start of the row that holds ``at``, its slot in that row)."""
    at = at.astimezone(UTC)
    if resolution == MINUTE:
        return at.replace(minute=0, second=0, microsecond=0), at.minute
    return at.replace(hour=0, minute=0, second=0, microsecond=0), at.hour


def empty_bytes(resolution: str) -> bytes:
    return bytes([NO_BYTE]) * WIDTH[resolution]


def empty_mibs(resolution: str) -> bytes:
    return struct.pack(f"<{WIDTH[resolution]}I", *[NO_MIB] * WIDTH[resolution])


def put_byte(packed: bytes, slot: int, value: float) -> bytes:
    """``packed`` with ``value`` (a percentage or a count, rounded, kept within 0–254) at ``slot``."""
    return packed[:slot] + bytes([max(0, min(NO_BYTE - 1, round(value)))]) + packed[slot + 1 :]


def put_mib(packed: bytes, slot: int, value: int) -> bytes:
    return packed[: 4 * slot] + struct.pack("<I", max(0, min(NO_MIB - 1, int(value)))) + packed[4 * slot + 4 :]


def read_bytes(packed) -> list[int | None]:
    return [None if b == NO_BYTE else b for b in bytes(packed)]


def read_mibs(packed) -> list[int | None]:
    raw = bytes(packed)
    return [None if v == NO_MIB else v for v in struct.unpack(f"<{len(raw) // 4}I", raw)]


def mean(values) -> float | None:
    """The mean of the points present, or None where there is none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None

"""UTC timestamps as the evidence writes them: ISO 8601 with a `Z`, and read back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

TimeSpec = Literal["seconds", "milliseconds", "microseconds"]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def utc_stamp(moment: datetime | None = None, timespec: TimeSpec = "microseconds") -> str:
    """`moment` (default now) as `2026-12-01T21:14:03.123456Z`; naive times are taken as UTC."""
    moment = utc_now() if moment is None else moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse_utc(text: str) -> datetime:
    """An ISO 8601 timestamp (`Z` or an offset; none means UTC) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)

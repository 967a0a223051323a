"""Deadline arithmetic for regulatory clocks: hours, calendar days, months and business days.

Every moment is an aware UTC datetime, and hours, days and months are counted in UTC, so a
72 h clock is 72 real hours whatever daylight saving time does in between. Only business days
need a local calendar: which date a moment falls on, which dates are working days, and when a
working day ends are all local, so they are computed with `zoneinfo` in the calendar's time zone
and the result turned back into UTC.
"""

from __future__ import annotations

import calendar as months
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

Unit = Literal["hours", "days", "months", "business_days"]
UNITS: tuple[Unit, ...] = ("hours", "days", "months", "business_days")


@dataclass(frozen=True)
class Calendar:
    """Where business days are counted: whose public holidays, in which time zone, and the
    local time at which a business day ends (a deadline on that day is then)."""

    holidays: str | None
    """A country code the `holidays` package knows (`US`, `DE`), optionally with a
    subdivision (`US-NY`); None: only Saturdays and Sundays are days off."""
    time_zone: str
    day_ends: time

    def describe(self) -> str:
        """The calendar in words, as the docs and records state it."""
        days_off = f"{self.holidays} public holidays" if self.holidays else "no holidays"
        return (
            f"Saturdays, Sundays and {days_off} excluded; a business day ends at"
            f" {self.day_ends.strftime('%H:%M')} {self.time_zone}"
        )


US_FEDERAL = Calendar(holidays="US", time_zone="America/New_York", day_ends=time(17, 30))
"""The SEC's business days: US federal holidays (observed days included), and EDGAR's 17:30
Eastern cut-off for a filing to be dated that day (Regulation S-T Rule 13(a)(2))."""


def add_hours(start: datetime, hours: int) -> datetime:
    """`hours` real hours after `start`."""
    return start + timedelta(hours=hours)


def add_days(start: datetime, days: int) -> datetime:
    """`days` calendar days of 24 hours after `start`, counted in UTC."""
    return start + timedelta(days=days)


def add_months(start: datetime, count: int) -> datetime:
    """The same day `count` months later at the same UTC time, clamped to the end of a shorter
    month: 31 January plus one month is 28 (or 29) February."""
    index = start.month - 1 + count
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, months.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def add_business_days(start: datetime, count: int, calendar: Calendar) -> datetime:
    """The end of the `count`th business day after the local date `start` falls on.

    The day of `start` never counts, whatever time it is: a determination on a Wednesday makes
    Thursday the first business day, one on a Saturday or a holiday makes the next working day
    the first (Form 8-K General Instruction B.1 counts from there too).
    """
    zone = ZoneInfo(calendar.time_zone)
    day = start.astimezone(zone).date()
    is_day_off = _days_off(calendar.holidays)
    counted = 0
    while counted < count:
        day += timedelta(days=1)
        if day.weekday() < 5 and not is_day_off(day):
            counted += 1
    return datetime.combine(day, calendar.day_ends, tzinfo=zone).astimezone(UTC)


def add(start: datetime, amount: int, unit: Unit, calendar: Calendar | None = None) -> datetime:
    """`amount` of `unit` after `start`; business days need `calendar`."""
    if unit == "hours":
        return add_hours(start, amount)
    if unit == "days":
        return add_days(start, amount)
    if unit == "months":
        return add_months(start, amount)
    if calendar is None:
        raise ValueError("business days are counted on a calendar; none was given")
    return add_business_days(start, amount, calendar)


def amount_text(amount: int, unit: Unit) -> str:
    """`72 h`, `15 days`, `one month`, `4 business days`."""
    if unit == "hours":
        return f"{amount} h"
    if unit == "months":
        return "one month" if amount == 1 else f"{amount} months"
    word = "business day" if unit == "business_days" else "day"
    return f"{amount} {word}{'s' if amount != 1 else ''}"


def _days_off(code: str | None) -> Callable[[date], bool]:
    if code is None:
        return lambda _: False
    return _holiday_calendar(code).__contains__


@functools.cache
def _holiday_calendar(code: str) -> holidays.HolidayBase:
    """The public holidays of a country (`US`) or of one of its subdivisions (`US-NY`), every
    year, observed days included."""
    country, _, subdivision = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdivision or None)


def known_calendar(code: str) -> bool:
    """True when `holidays` knows the country (and subdivision) `code` names."""
    country, _, subdivision = code.partition("-")
    supported = holidays.list_supported_countries()
    if country not in supported:
        return False
    return not subdivision or subdivision in supported[country]


def holiday_countries() -> list[str]:
    """Every country code `holidays` knows, for hints."""
    return sorted(holidays.list_supported_countries())

"""UTC timestamps: one spelling written, every ISO spelling read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flows.times import parse_utc, utc_stamp


def test_a_stamp_ends_in_z_with_microseconds() -> None:
    """An aware time is written in UTC with a `Z`, to the microsecond by default."""
    moment = datetime(2026, 12, 1, 21, 14, 3, 120, tzinfo=UTC)
    assert utc_stamp(moment) == "2026-12-01T21:14:03.000120Z"


def test_a_stamp_converts_other_offsets_to_utc() -> None:
    """A time at +02:00 is written as the same instant in UTC."""
    moment = datetime(2026, 12, 1, 23, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_stamp(moment, "seconds") == "2026-12-01T21:00:00Z"


def test_a_stamp_reads_back_as_the_same_instant() -> None:
    """parse_utc inverts utc_stamp, and reads `+00:00` and naive times as UTC too."""
    moment = datetime(2026, 12, 1, 21, 14, 3, 5, tzinfo=UTC)
    assert parse_utc(utc_stamp(moment)) == moment
    assert parse_utc("2026-12-01T21:14:03.000005+00:00") == moment
    assert parse_utc("2026-12-01T21:14:03.000005") == moment

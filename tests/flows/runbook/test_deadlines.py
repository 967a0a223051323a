"""Regulatory deadlines at the edges of their arithmetic: weekends, US federal holidays, time
zones, daylight saving time, month ends, DORA's earlier-of rule and the AI Act's variants."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from flows.runbook.clocks import AWARENESS, CATALOGUE, DETERMINATION, catalogue_clock
from flows.runbook.deadlines import US_FEDERAL, Calendar, add_business_days, add_months
from flows.runbook.declared_clocks import deadline, duration_seconds


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def due(clock_id: str, milestone_id: str, start: str, variant: str | None = None) -> datetime:
    """A catalogue milestone's deadline with the determination (and awareness) at `start`."""
    clock = catalogue_clock(clock_id)
    assert clock is not None
    chosen = clock.variant(variant)
    assert chosen is not None
    milestone = next(m for m in chosen.milestones if m.id == milestone_id)
    anchors = {DETERMINATION: at(start), AWARENESS: at(start)}
    found = deadline(clock, milestone, anchors)
    assert found is not None
    return found


# -- SEC Form 8-K Item 1.05: four business days, US federal holidays, 17:30 New York ----------


def test_a_determination_on_the_wednesday_before_thanksgiving_skips_the_holiday() -> None:
    """Wednesday 25 November 2026: Thanksgiving (Thursday) does not count, the Friday after
    does, so the fourth business day is Wednesday 2 December, due 17:30 EST (22:30 UTC)."""
    assert due("sec-8k-1.05", "form-8k", "2026-11-25T15:00:00-05:00") == at(
        "2026-12-02T22:30:00+00:00"
    )


def test_a_determination_on_an_observed_independence_day_counts_from_the_monday() -> None:
    """4 July 2026 is a Saturday, observed on Friday 3 July: a determination that Friday counts
    Monday 6 July as day one, so it is due Thursday 9 July at 17:30 EDT (21:30 UTC)."""
    assert due("sec-8k-1.05", "form-8k", "2026-07-03T10:00:00-04:00") == at(
        "2026-07-09T21:30:00+00:00"
    )


def test_a_determination_on_a_weekend_counts_from_the_next_business_day() -> None:
    """Saturday 14 March 2026: Monday to Thursday are the four days, due Thursday 19 March."""
    assert due("sec-8k-1.05", "form-8k", "2026-03-14T12:00:00+00:00") == at(
        "2026-03-19T17:30:00-04:00"
    )


def test_a_late_evening_determination_counts_by_its_new_york_date_not_its_utc_date() -> None:
    """23:00 EDT on Monday 9 March 2026 is already Tuesday in UTC; the day is Monday's, so the
    deadline is Friday 13 March, not Monday 16 March."""
    assert due("sec-8k-1.05", "form-8k", "2026-03-10T03:00:00+00:00") == at(
        "2026-03-13T17:30:00-04:00"
    )


def test_the_end_of_a_business_day_is_local_across_the_us_dst_switch() -> None:
    """Friday 6 March 2026 (EST) is due Thursday 12 March (EDT, after the 8 March switch): still
    17:30 in New York, which is 21:30 UTC, not the 22:30 UTC it would be in winter."""
    deadline_at = due("sec-8k-1.05", "form-8k", "2026-03-06T14:00:00-05:00")
    assert deadline_at == at("2026-03-12T21:30:00+00:00")
    assert deadline_at.astimezone(ZoneInfo("America/New_York")).time() == time(17, 30)


def test_business_days_on_another_countrys_calendar_skip_its_holidays() -> None:
    """Two German business days from Thursday 24 December 2026: Christmas (Friday) and the
    weekend are skipped, so the deadline is Tuesday 29 December at the day's end in Berlin."""
    berlin = Calendar(holidays="DE", time_zone="Europe/Berlin", day_ends=time(23, 59))
    assert add_business_days(at("2026-12-24T09:00:00+01:00"), 2, berlin) == at(
        "2026-12-29T23:59:00+01:00"
    )


def test_without_a_holiday_calendar_only_weekends_are_days_off() -> None:
    """The US calendar skips Thanksgiving; a weekends-only calendar counts it."""
    plain = Calendar(holidays=None, time_zone="America/New_York", day_ends=time(17, 30))
    start = at("2026-11-25T15:00:00-05:00")
    assert add_business_days(start, 1, plain).date().isoformat() == "2026-11-26"
    assert add_business_days(start, 1, US_FEDERAL).date().isoformat() == "2026-11-27"


# -- hours and days: real time in UTC, whatever daylight saving time does ----------------------


def test_a_72_hour_clock_across_the_eu_dst_switch_is_72_real_hours() -> None:
    """GDPR's 72 h from 11:00 CET on Friday 27 March 2026 end at 12:00 CEST on Monday 30 March:
    Europe moved its clocks on the 29th, so the wall clock says an hour more."""
    start = "2026-03-27T11:00:00+01:00"
    deadline_at = due("gdpr-art33", "notification", start)
    assert deadline_at - at(start) == timedelta(hours=72)
    assert deadline_at.astimezone(ZoneInfo("Europe/Berlin")).isoformat() == (
        "2026-03-30T12:00:00+02:00"
    )


def test_a_72_hour_clock_across_the_us_dst_switch_is_72_real_hours() -> None:
    """NYDFS's 72 h from 09:00 EST on Friday 6 March 2026 end at 10:00 EDT on Monday 9 March."""
    start = "2026-03-06T09:00:00-05:00"
    deadline_at = due("nydfs-500.17", "notification", start)
    assert deadline_at - at(start) == timedelta(hours=72)
    local = deadline_at.astimezone(ZoneInfo("America/New_York"))
    assert local.isoformat() == "2026-03-09T10:00:00-04:00"


def test_sixty_calendar_days_are_sixty_times_24_hours_in_utc() -> None:
    """HIPAA's 60 days from 14:00 UTC on 1 October 2026 end at 14:00 UTC on 30 November."""
    assert due("hipaa-breach", "notification", "2026-10-01T14:00:00+00:00") == at(
        "2026-11-30T14:00:00+00:00"
    )


# -- one month: the same day next month, clamped to the month's end ---------------------------


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2026-01-31T09:00:00+00:00", "2026-02-28T09:00:00+00:00"),
        ("2028-01-31T09:00:00+00:00", "2028-02-29T09:00:00+00:00"),
        ("2026-03-31T09:00:00+00:00", "2026-04-30T09:00:00+00:00"),
        ("2026-12-15T09:00:00+00:00", "2027-01-15T09:00:00+00:00"),
        ("2026-02-28T23:30:00+00:00", "2026-03-28T23:30:00+00:00"),
    ],
)
def test_one_month_is_the_same_day_next_month_clamped_to_its_end(start: str, expected: str) -> None:
    """31 January plus a month is 28 February (29 in a leap year); mid-month days carry over,
    December rolls into January, and the UTC time of day is kept."""
    assert add_months(at(start), 1) == at(expected)


def test_nis2s_final_report_is_one_month_after_the_notification_is_filed() -> None:
    """The final report counts from the notification's filing, not from awareness."""
    clock = catalogue_clock("nis2-art23")
    assert clock is not None
    final = next(m for m in clock.milestones if m.id == "final-report")
    assert deadline(clock, final, {DETERMINATION: at("2026-01-01T00:00:00+00:00")}) is None
    filed = {"notification": at("2026-01-31T16:00:00+00:00")}
    assert deadline(clock, final, filed) == at("2026-02-28T16:00:00+00:00")


# -- DORA: 4 h from classification, at most 24 h from awareness --------------------------------


def test_doras_initial_notification_is_4_hours_from_a_prompt_classification() -> None:
    """Classified as major 2 h after awareness: 4 h from classification comes first."""
    clock = catalogue_clock("dora-major")
    assert clock is not None
    initial = clock.milestones[0]
    aware, classified = at("2026-05-04T08:00:00+00:00"), at("2026-05-04T10:00:00+00:00")
    found = deadline(clock, initial, {AWARENESS: aware, DETERMINATION: classified})
    assert found == classified + timedelta(hours=4)


def test_doras_initial_notification_is_capped_at_24_hours_from_awareness() -> None:
    """Classified 22 h after awareness: 4 h more would pass the 24 h cap, which holds."""
    clock = catalogue_clock("dora-major")
    assert clock is not None
    initial = clock.milestones[0]
    aware, classified = at("2026-05-04T08:00:00+00:00"), at("2026-05-05T06:00:00+00:00")
    found = deadline(clock, initial, {AWARENESS: aware, DETERMINATION: classified})
    assert found == aware + timedelta(hours=24)


# -- the AI Act's variants ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "days"),
    [(None, 15), ("general", 15), ("widespread", 2), ("critical-infrastructure", 2), ("death", 10)],
)
def test_each_ai_act_variant_has_its_own_number_of_days(variant: str | None, days: int) -> None:
    """Art. 73: 15 days by default, 2 for a widespread infringement or critical infrastructure,
    10 in case of a death."""
    start = "2026-08-10T12:00:00+00:00"
    assert due("eu-ai-act-art73", "report", start, variant) == at(start) + timedelta(days=days)


def test_every_variant_of_a_clock_has_the_same_milestones() -> None:
    """A runbook's `stops_at` names milestones once for every variant the determination picks."""
    for clock in CATALOGUE:
        ids = {tuple(m.id for m in v.milestones) for v in clock.variants}
        assert len(ids) == 1, clock.id


def test_remind_before_reads_days_hours_and_minutes() -> None:
    """`1d12h` is 36 hours, `30m` half an hour."""
    assert duration_seconds("1d12h") == 36 * 3600
    assert duration_seconds("30m") == 1800

"""The regulatory clocks of an incident as one table: the evidence report and the postmortem
both show it, one row per milestone.

Each row says who started the clock, when and with what reasoning, the milestone's deadline
and how it was computed, when it was notified (and the filing's reference), and whether that
was on time. A clock the runbook declares that never started has a row saying so. Every value
is plain text from the ledger, untrusted: the report's template and the postmortem escape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from flows.evidence.clocks import ClockState, MilestoneState, Standing, left_text, read_clocks
from flows.evidence.records import Record
from flows.runbook.declared_clocks import declared_clock
from flows.runbook.model import Runbook

AID = (
    "Regulatory clocks are an aid to responders, not legal advice: each deadline is computed by"
    " the rule shown from the moment recorded; check the source."
)


@dataclass(frozen=True)
class ClockRow:
    """One milestone of one clock, as the report and the postmortem show it."""

    clock: str
    title: str
    source: str
    started: str
    reasoning: str
    milestone: str
    rule: str
    deadline: str
    notified: str
    reference: str
    outcome: str
    status: str
    """`succeeded` (filed on time), `failed` (late or expired) or `waiting`: the badge."""


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else ""


def _outcome(milestone: MilestoneState) -> tuple[str, str]:
    """The milestone's outcome in words and its badge, from the records alone."""
    standing = milestone.standing()
    filing = milestone.filing
    if filing is not None and filing.late and milestone.deadline is not None:
        late_by = left_text((filing.at - milestone.deadline).total_seconds())
        return f"filed late, {late_by} after the deadline", "failed"
    if standing is Standing.ON_TIME:
        return "filed on time", "succeeded"
    if standing is Standing.EXPIRED:
        return "expired, not filed", "failed"
    if standing is Standing.WAITING:
        return f"not started: {milestone.rule}", "waiting"
    return "not filed yet", "waiting"


def _started(clock: ClockState) -> str:
    variant = f"; variant {clock.variant}" if clock.variant else ""
    problem = f" ({clock.variant_problem})" if clock.variant_problem else ""
    return (
        f"{_stamp(clock.started_at)} by {clock.decided_by or 'unknown'} at gate {clock.gate}"
        f" (catalogue {clock.catalogue}{variant}){problem}"
    )


def clock_rows(runbook: Runbook, records: Sequence[Record]) -> list[ClockRow]:
    """A row per milestone of every clock the records started, then one per declared clock
    that never started."""
    rows = []
    started = read_clocks(records)
    for clock in started:
        for milestone in clock.milestones:
            outcome, status = _outcome(milestone)
            filing = milestone.filing
            rows.append(
                ClockRow(
                    clock=clock.id,
                    title=clock.title,
                    source=clock.source,
                    started=_started(clock),
                    reasoning=clock.reasoning,
                    milestone=milestone.title,
                    rule=milestone.rule,
                    deadline=_stamp(milestone.deadline),
                    notified=f"{_stamp(filing.at)} by {filing.by}" if filing else "",
                    reference=filing.reference if filing else "",
                    outcome=outcome,
                    status=status,
                )
            )
    ids = {clock.id for clock in started}
    for spec in runbook.meta.clocks:
        if spec.id in ids:
            continue
        declared = declared_clock(spec)
        rows.append(
            ClockRow(
                clock=spec.id,
                title=declared.title,
                source=declared.source,
                started="not started",
                reasoning="",
                milestone="",
                rule="",
                deadline="",
                notified="",
                reference="",
                outcome=f"not started: gate {spec.starts_at} was not acknowledged",
                status="waiting",
            )
        )
    return rows

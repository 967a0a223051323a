"""Regulatory clocks watched from the server: reminders before each deadline, and expiries.

`remind_before` ahead of a milestone's deadline, while it is not filed, the clock's owner role
is reminded in the incident's channel, once per milestone (`clock.reminded`); when a deadline
passes unfiled, `clock.expired` is recorded (`flows.engine.clocks`). As with gate reminders
(`flows.engine.gate_timers`), the message is posted before its record, under a dedupe key, and
the record is written under the gate lock after looking again: a crash between the two posts
nothing twice, and two clocks never both record it.

`ClockWatch.scan` is what the server's clock thread calls: it looks at every incident not
succeeded (a failed or aborted run does not stop a legal clock), drills excepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flows.contract.ports import ChatSystem
from flows.engine.approvals import gate_lock, incident_roster
from flows.engine.clocks import clock_marks, mark_clocks
from flows.engine.gate_timers import gate_channel
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.clocks import ClockState, MilestoneState, left_text, read_clocks
from flows.evidence.escaping import chat_text as escape
from flows.evidence.incident import DOCUMENT_FILE, Incident, incident_folder, load_incident
from flows.evidence.ledger import Ledger
from flows.evidence.population import IndexEntry, Standing, note_standing
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.verify import read_records
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.runbook.roster import Roster
from flows.times import utc_stamp
from integrations.slack import ChatError
from integrations.slack.reminders import audience

LOG = logging.getLogger("runbook.clocks")


@dataclass(frozen=True)
class Reminder:
    """A milestone whose reminder is due: it is within `remind_before` of its deadline."""

    clock: ClockState
    milestone: MilestoneState

    @property
    def deadline(self) -> datetime:
        assert self.milestone.deadline is not None
        return self.milestone.deadline


def due_reminders(records: Sequence[Record], now: datetime) -> list[Reminder]:
    """The reminders due at `now`: from `remind_before` ahead of a deadline until it passes,
    for milestones not filed nor reminded; a reminder not sent by the deadline is dropped."""
    found = []
    for clock in read_clocks(records):
        if clock.remind_before_s is None:
            continue
        ahead = timedelta(seconds=clock.remind_before_s)
        for milestone in clock.milestones:
            if milestone.deadline is None or milestone.filing is not None:
                continue
            if milestone.reminded_at is not None or milestone.expired_at is not None:
                continue
            if milestone.deadline - ahead <= now < milestone.deadline:
                found.append(Reminder(clock, milestone))
    return found


def local_time(moment: datetime, time_zone: str | None) -> str:
    """`2026-07-09 21:30 UTC (17:30 America/New_York)`: UTC, and the clock's own zone."""
    text = moment.strftime("%Y-%m-%d %H:%M UTC")
    if time_zone is None or time_zone == "UTC":
        return text
    local = moment.astimezone(ZoneInfo(time_zone))
    return f"{text} ({local.strftime('%Y-%m-%d %H:%M')} {time_zone})"


def remind(
    ledger: Ledger,
    incident: Incident,
    runbook: Runbook,
    roster: Roster | None,
    chat: ChatSystem,
    *,
    now: datetime,
) -> list[Record]:
    """Post and record every clock reminder due at `now`; the records written.

    A reminder Slack refuses is not recorded: it stays due, and the next scan tries again.
    """
    written = []
    for reminder in due_reminders(read_records(ledger.folder), now):
        clock, milestone = reminder.clock, reminder.milestone
        try:
            told = _post(reminder, incident, runbook, roster, chat, now)
        except ChatError as error:
            LOG.warning(
                "clock %s of %s: could not remind of %s: %s",
                clock.id,
                incident.id,
                milestone.id,
                error,
            )
            continue
        with gate_lock(ledger.folder):
            # Decided again under the lock: a filing, or another clock's reminder, may have
            # come first (the other clock posted under the same dedupe key).
            still = due_reminders(read_records(ledger.folder), now)
            if not any(r.clock.id == clock.id and r.milestone.id == milestone.id for r in still):
                continue
            data: dict[str, Any] = {
                "clock": clock.id,
                "milestone": milestone.id,
                "title": milestone.title,
                "deadline": utc_stamp(reminder.deadline),
                "left_s": round((reminder.deadline - now).total_seconds(), 3),
                "owner": clock.owner,
                **told,
            }
            written.append(ledger.record(Event.CLOCK_REMINDED, data=data))
    return written


def _post(
    reminder: Reminder,
    incident: Incident,
    runbook: Runbook,
    roster: Roster | None,
    chat: ChatSystem,
    now: datetime,
) -> dict[str, Any]:
    """Post one reminder; what its record says of it."""
    clock, milestone = reminder.clock, reminder.milestone
    owner = audience(roster, [clock.owner])
    gate = next((g for g in runbook.gates if g.id == milestone.stops_at), None)
    filed_by = f"*{escape(gate.title)}*" if gate is not None else f"`{escape(milestone.stops_at)}`"
    text = (
        f":alarm_clock: *{escape(runbook.meta.title)}*, incident `{escape(incident.id)}`:"
        f" *{escape(milestone.title)}* ({escape(clock.title)}) is due"
        f" {escape(local_time(reminder.deadline, clock.time_zone))},"
        f" in {left_text((reminder.deadline - now).total_seconds())}."
        f" {owner.text or escape(clock.owner)}: file it, then acknowledge {filed_by} with the"
        f" filing's reference. Rule: {escape(milestone.rule)} ({escape(clock.source)})."
    )
    told: dict[str, Any] = {
        "notified": {"people": list(owner.people), "groups": list(owner.groups)}
    }
    channel = gate_channel(chat, incident.id, runbook)
    if channel is None:
        told["message"] = None  # nobody can be told here; the record says so
        return told
    key = f"{incident.id}:clock:{clock.id}:{milestone.id}:{Event.CLOCK_REMINDED}"
    posted = chat.post(channel, text, key)
    told["message"] = {"channel": posted.channel, "ts": posted.ts}
    return told


def check_clocks(
    settings: Settings,
    incident_id: str,
    chat: ChatSystem,
    *,
    now: datetime,
    runbook: Runbook | None = None,
) -> list[Record]:
    """Do what an incident's clocks make due at `now`: the records they were recorded in."""
    folder = incident_folder(settings.incidents_dir, incident_id)
    runbook = runbook or parse_runbook(folder / DOCUMENT_FILE)
    records = read_records(folder)
    if not clock_marks(runbook, records, now) and not due_reminders(records, now):
        return []
    incident = load_incident(settings.incidents_dir, incident_id)
    roster = incident_roster(settings, incident.runbook.source)
    ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
    with Ledger(folder, incident.id, ref, settings.redactor()) as ledger:
        with gate_lock(folder):
            written = mark_clocks(ledger, now, runbook)
        written += remind(ledger, incident, runbook, roster, chat, now=now)
    if written:
        note_standing(settings.incidents_dir, folder)
    return written


class ClockWatch:
    """The clocks of every incident still going on, checked at each scan of the server."""

    def __init__(self, settings: Settings, chat: Callable[[], ChatSystem]) -> None:
        self.settings, self._chat = settings, chat
        self._documents: dict[str, Runbook | None] = {}
        """Each incident's document, parsed once, or None when it declares no clock."""

    def scan(self, entries: Iterable[IndexEntry], now: datetime) -> list[Record]:
        """Check the clocks of the incidents in `entries` (the index's latest) at `now`."""
        written: list[Record] = []
        for entry in entries:
            if entry.drill or entry.standing is Standing.SUCCEEDED:
                continue
            try:
                runbook = self._document(entry.incident)
                if runbook is not None:
                    written += check_clocks(
                        self.settings, entry.incident, self._chat(), now=now, runbook=runbook
                    )
            except RunbookError as error:  # one broken incident never stops the others
                LOG.error("clock watch: incident %s: %s", entry.incident, error)
        return written

    def _document(self, incident: str) -> Runbook | None:
        if incident not in self._documents:
            folder = incident_folder(self.settings.incidents_dir, incident)
            runbook = parse_runbook(folder / DOCUMENT_FILE)
            self._documents[incident] = runbook if runbook.meta.clocks else None
        return self._documents[incident]

"""Gate timers: what a waiting gate's ```gate policy makes due, and doing each thing once.

A gate's clock starts at its `gate.waiting` record. `remind_before_s` before its `timeout_s`
runs out, its approvers are reminded (`gate.reminded`); when it runs out, `on_timeout` happens
and is recorded as `gate.timed_out`:

- `escalate`: the `escalate_to` role's people are told; the gate keeps waiting for an approver;
- `page`: the gate is posted again with its button, mentioning the `escalate_to` role; it keeps
  waiting;
- `fail`: the gate fails; the next walk of the plan ends the run failed there;
- `continue`: the gate passes without anyone's approval ("continued on timeout"); the next
  walk goes on past it.

Each happens once per gate: its record is the guard. Records are written under the incident's
gate lock, the lock every answer takes, so a late approval and a timeout are decided one after
the other and the first one recorded wins: an approval recorded first leaves nothing due; after
a `fail` or `continue` the gate takes no answers. Messages are posted before their record, under
a dedupe key, so a crash between the two posts nothing twice and the next scan records it.

`due` is a plain function of the records, the gates and the time; `act_on_due` does what it
finds; `check_incident` is what the server's clock calls for each waiting incident.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from flows.contract.ports import ChatSystem
from flows.engine.approvals import gate_lock, incident_roster
from flows.engine.settings import Settings
from flows.evidence.incident import DOCUMENT_FILE, Incident, incident_folder, load_incident
from flows.evidence.ledger import Ledger
from flows.evidence.population import note_standing
from flows.evidence.progress import ItemStatus, progress_from_records
from flows.evidence.records import Event, Record, RunbookRef
from flows.evidence.verify import read_records
from flows.runbook.model import Gate, Runbook
from flows.runbook.parse import parse_runbook
from flows.runbook.roster import Roster
from flows.times import utc_stamp
from integrations.slack import ChatError
from integrations.slack import reminders as notices

LOG = logging.getLogger("runbook.gates")


class Act(StrEnum):
    """What a gate's timer does: remind before the timeout, or its `on_timeout`."""

    REMIND = "remind"
    ESCALATE = "escalate"
    PAGE = "page"
    FAIL = "fail"
    CONTINUE = "continue"


SETTLING = frozenset({Act.FAIL, Act.CONTINUE})
"""Acts that decide the gate: the run must walk the plan again to fail or go on."""

_OUTCOME = {
    Act.ESCALATE: "escalated",
    Act.PAGE: "paged",
    Act.FAIL: "failed",
    Act.CONTINUE: "continued",
}


@dataclass(frozen=True)
class Due:
    """One thing a gate's timer must do now: `act`, for the gate waiting `since`."""

    gate: Gate
    act: Act
    since: datetime
    deadline: datetime
    """When the gate times out: `since` + `timeout_s`."""

    @property
    def event(self) -> Event:
        """The record that says it was done (and keeps it from being done twice)."""
        return Event.GATE_REMINDED if self.act is Act.REMIND else Event.GATE_TIMED_OUT


@dataclass(frozen=True)
class Acted:
    """What became of one due act: its record, or the error that kept it from being done."""

    due: Due
    record: Record | None
    error: str = ""


def due(records: Sequence[Record], gates: Iterable[Gate], now: datetime) -> list[Due]:
    """What the timers of `gates` make due at `now`, given the incident's records.

    Only gates still waiting count. A reminder is due from `timeout_s - remind_before_s` after
    the gate's `gate.waiting` until its timeout; once the timeout is due, a reminder not sent
    yet is dropped, as it could only arrive late. Each is due until its record exists.
    """
    progress = progress_from_records(records)
    waiting: dict[str, datetime] = {}
    done: set[tuple[str | None, Event]] = set()
    for record in records:
        if record.event is Event.GATE_WAITING and record.step is not None:
            waiting.setdefault(record.step, record.at)
        elif record.event in (Event.GATE_REMINDED, Event.GATE_TIMED_OUT):
            done.add((record.step, record.event))
    found = []
    for gate in gates:
        policy = gate.policy
        if policy is None or policy.timeout_s is None or policy.on_timeout is None:
            continue
        since = waiting.get(gate.id)
        if since is None or progress.statuses.get(gate.id) != ItemStatus.WAITING:
            continue
        deadline = since + timedelta(seconds=policy.timeout_s)
        if now >= deadline:
            if (gate.id, Event.GATE_TIMED_OUT) not in done:
                found.append(Due(gate, Act(policy.on_timeout), since, deadline))
            continue
        remind_at = deadline - timedelta(seconds=policy.remind_before_s or 0)
        reminded = (gate.id, Event.GATE_REMINDED) in done
        if policy.remind_before_s is not None and now >= remind_at and not reminded:
            found.append(Due(gate, Act.REMIND, since, deadline))
    return found


def gate_channel(chat: ChatSystem, incident: str, runbook: Runbook) -> str | None:
    """Where an incident's gates are talked about: its channel, else its owner's `#channel`."""
    owner = runbook.meta.owner
    return chat.incident_channel(incident) or (owner if owner.startswith("#") else None)


def act_on_due(
    ledger: Ledger,
    incident: Incident,
    runbook: Runbook,
    roster: Roster | None,
    chat: ChatSystem,
    *,
    now: datetime,
    gates: Iterable[Gate] | None = None,
) -> list[Acted]:
    """Do what the timers of `gates` (default: all of the runbook's) make due at `now`.

    A message that cannot be posted is not recorded: the act stays due, and its error is
    returned for the caller to report; the next scan tries again (the dedupe key keeps it to
    one message).
    """
    chosen = list(runbook.gates if gates is None else gates)
    acted = []
    for item in due(read_records(ledger.folder), chosen, now):
        data: dict[str, Any] = _facts(item, now)
        if item.act not in SETTLING:
            try:
                data.update(_notify(item, now, incident, runbook, roster, chat))
            except ChatError as error:
                LOG.warning(
                    "gate %s of %s: could not %s: %s", item.gate.id, incident.id, item.act, error
                )
                acted.append(Acted(item, None, str(error)))
                continue
        with gate_lock(ledger.folder):
            # Decided again under the lock: an answer or another clock may have come first.
            current = read_records(ledger.folder)
            if item.act in SETTLING:
                if not any(d.act is item.act for d in due(current, [item.gate], now)):
                    continue
            elif any(r.event is item.event and r.step == item.gate.id for r in current):
                continue  # another clock posted it, under the same dedupe key, and recorded it
            record = ledger.record(item.event, step=item.gate.id, data=data)
        acted.append(Acted(item, record))
    return acted


def _facts(item: Due, now: datetime) -> dict[str, Any]:
    policy = item.gate.policy
    assert policy is not None
    data: dict[str, Any] = {
        "on_timeout": policy.on_timeout,
        "timeout_s": policy.timeout_s,
        "waiting_since": utc_stamp(item.since),
        "deadline": utc_stamp(item.deadline),
        "waited_s": round((now - item.since).total_seconds(), 3),
    }
    if item.act is Act.REMIND:
        data["remind_before_s"] = policy.remind_before_s
    else:
        data["outcome"] = _OUTCOME[item.act]
    if policy.escalate_to is not None:
        data["escalate_to"] = policy.escalate_to
    return data


def _notify(
    item: Due,
    now: datetime,
    incident: Incident,
    runbook: Runbook,
    roster: Roster | None,
    chat: ChatSystem,
) -> dict[str, Any]:
    """Post the reminder, escalation or page; what the record says of it."""
    gate, title = item.gate, runbook.meta.title
    waited = (item.deadline - item.since).total_seconds()
    if item.act is Act.REMIND:
        left = max(0.0, (item.deadline - now).total_seconds())
        notice = notices.reminder(incident.id, title, gate, roster, left)
    elif item.act is Act.ESCALATE:
        notice = notices.escalation(incident.id, title, gate, roster, waited)
    else:
        notice = notices.page(incident.id, title, gate, roster, waited)
    told: dict[str, Any] = {
        "notified": {"people": list(notice.audience.people), "groups": list(notice.audience.groups)}
    }
    channel = gate_channel(chat, incident.id, runbook)
    if channel is None:
        # Nobody can be told here; the record says so rather than claim a message.
        told["message"] = None
        return told
    key = f"{incident.id}:{gate.id}:{item.event}"
    posted = chat.post(channel, notice.text, key, blocks=notice.blocks)
    told["message"] = {"channel": posted.channel, "ts": posted.ts}
    return told


@dataclass(frozen=True)
class Check:
    """One incident's timers checked: what was done, and whether the run must walk again.

    `settled` is the seq of the `gate.timed_out` record that failed or continued a gate after
    the latest run ended (None when there is none): a resume is what makes the run fail or go on.
    """

    acted: tuple[Acted, ...]
    settled: int | None


def check_incident(
    settings: Settings,
    incident_id: str,
    chat: ChatSystem,
    *,
    now: datetime,
    runbook: Runbook | None = None,
) -> Check:
    """Do what an incident's gate timers make due at `now` (see the module); `runbook` is its
    document when the caller has it parsed."""
    incident = load_incident(settings.incidents_dir, incident_id)
    folder = incident_folder(settings.incidents_dir, incident_id)
    runbook = runbook or parse_runbook(folder / DOCUMENT_FILE)
    acted: list[Acted] = []
    if due(read_records(folder), runbook.gates, now):
        roster = incident_roster(settings, incident.runbook.source)
        ref = RunbookRef(id=runbook.id, version=runbook.meta.version, sha256=runbook.sha256)
        with Ledger(folder, incident.id, ref, settings.redactor()) as ledger:
            acted = act_on_due(ledger, incident, runbook, roster, chat, now=now)
        if any(a.record is not None for a in acted):
            note_standing(settings.incidents_dir, folder)
    return Check(tuple(acted), unwalked_settlement(read_records(folder)))


def unwalked_settlement(records: Sequence[Record]) -> int | None:
    """The seq of a `gate.timed_out` that failed or continued a gate after the latest run
    ended, or None: the run has not yet failed or gone on because of it."""
    finished = max((r.seq for r in records if r.event is Event.RUN_FINISHED), default=0)
    settling = [
        r.seq
        for r in records
        if r.event is Event.GATE_TIMED_OUT
        and r.data.get("on_timeout") in SETTLING
        and r.seq > finished
    ]
    return settling[-1] if settling else None

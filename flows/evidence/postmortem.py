"""A postmortem draft from an incident's evidence: Markdown for the team's wiki, a chat summary.

Everything comes from the incident folder (incident.json, the runbook as run, the ledger) and
nothing from elsewhere. The figures are the census's (the ones `evidence list` gives auditors),
the story is the spans' (the one report.html tells), and the draft ends naming the ledger head
it was drawn from, so a reader can check it against the evidence.

Ledger text is untrusted: notes, errors and names typed at a prompt or a Slack button. Every
piece of it is escaped where it is interpolated (`flows.evidence.escaping`), so a note cannot
become a heading, a link, HTML or a table cell on the wiki, nor a mention in chat. The ledger
is already redacted; the draft adds nothing from outside it (no inputs, no alert payload, no
step outputs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flows.errors import RunbookError
from flows.evidence.census import CensusRow, census_row
from flows.evidence.clock_table import AID, clock_rows
from flows.evidence.escaping import chat_text, md_code, md_text
from flows.evidence.incident import DOCUMENT_FILE, INCIDENT_FILE, Incident
from flows.evidence.progress import ItemStatus
from flows.evidence.records import Event, Record
from flows.evidence.spans import (
    Moment,
    Span,
    find_rollbacks,
    read_entries,
    read_spans,
    seconds_text,
    story,
)
from flows.evidence.verify import Verification, verify_ledger
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.times import parse_utc, utc_stamp

DETAIL_LIMIT = 500
"""Characters of one error or note the draft quotes; the ledger holds the rest."""
_APPROVED, _REFUSED = "gate.approved", "gate.refused"
"""Answers at gates that need a quorum, by value: ledgers written before them hold neither."""
_ANSWERS = (_APPROVED, Event.GATE_ACKNOWLEDGED)
_TIMELINE_NAMES: dict[str, str] = {
    Event.DRILL_STARTED: "drill started",
    Event.DRILL_INJECT: "inject fired",
    Event.DRILL_SCORED: "drill scored",
    Event.DRILL_NOTE: "drill note",
    Event.DRILL_LESSON: "lesson recorded",
}
_PEOPLE_EVENTS = {
    Event.DRILL_STARTED: "started the drill",
    Event.DRILL_INJECT: "fired an inject",
    Event.DRILL_SCORED: "scored the drill",
    Event.DRILL_NOTE: "noted",
    Event.DRILL_LESSON: "recorded a lesson",
    Event.ALERT_RESOLVED: "resolved",
    Event.ALERT_UPDATED: "updated the alert",
}


def _clip(text: str, seq: int) -> str:
    if len(text) <= DETAIL_LIMIT:
        return text
    return f"{text[:DETAIL_LIMIT]}... (record {seq} holds the rest)"


def _when(moment: str | datetime | None) -> str:
    """A time as the draft shows it: UTC, to the second."""
    if moment is None:
        return ""
    at = parse_utc(moment) if isinstance(moment, str) else moment
    return utc_stamp(at, "seconds").replace("T", " ").removesuffix("Z") + " UTC"


def _duration(seconds: float | None) -> str:
    """How long, in the largest units that read well."""
    return "not reached" if seconds is None else seconds_text(seconds)


def _tally(answer: Record) -> str:
    """` (n of m)`: the approvals an answer at a gate counted, where its record says so."""
    approvals, needed = answer.data.get("approvals"), answer.data.get("needed")
    count = len(approvals) if isinstance(approvals, list) else approvals
    if not isinstance(count, int) or isinstance(count, bool):
        return ""
    return f" ({count} of {needed})" if isinstance(needed, int) else f" ({count})"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class Postmortem:
    """What a postmortem is drawn from: one incident folder, read once."""

    incident: Incident
    runbook: Runbook
    row: CensusRow
    entries: Sequence[Record]
    spans: Sequence[Span]
    moments: Sequence[Moment]
    verification: Verification

    @property
    def time_to_contain_s(self) -> float | None:
        """Seconds from opening to the first containment the census found."""
        if self.row.contained is None:
            return None
        took = parse_utc(self.row.contained) - parse_utc(self.row.opened)
        return round(took.total_seconds(), 3)

    @property
    def gates(self) -> list[Span]:
        return [span for span in self.spans if span.is_gate]

    @property
    def failures(self) -> list[Moment]:
        """Failed attempts, failed steps and artifacts not collected, in ledger order."""
        return [moment for moment in self.moments if moment.failed]

    @property
    def lessons(self) -> list[Record]:
        return [e for e in self.entries if e.event is Event.DRILL_LESSON]

    @property
    def head_hash(self) -> str:
        return self.verification.head_hash or "none (the ledger holds no record)"

    def markdown(self) -> str:
        """The draft, as Markdown ready for the team's wiki."""
        sections = [
            self._heading(),
            self._summary(),
            self._people(),
            self._timeline(),
            self._gates(),
            *self._clocks(),
            self._failures(),
            self._lessons(),
            self._verified(),
        ]
        return "\n\n".join(sections) + "\n"

    def summary(self, draft: str) -> str:
        """A short chat message with the key figures; `draft` says where the full draft is."""
        row = self.row
        acked = sum(1 for gate in self.gates if gate.status is ItemStatus.ACKNOWLEDGED)
        verified = "verified" if self.verification.ok else "DOES NOT VERIFY"
        lines = [
            f"Postmortem draft: {chat_text(self.incident.runbook.title)} ({chat_text(row.id)})",
            "Drill: a rehearsal, not a real incident" if row.drill else "Real incident",
            f"Status {chat_text(row.status)}, severity {chat_text(row.severity)},"
            f" kind {chat_text(row.kind)}",
            f"Opened {_when(row.opened)}; time to respond {_duration(row.time_to_respond_s)},"
            f" to contain {_duration(self.time_to_contain_s)},"
            f" to recover {_duration(row.time_to_recover_s)}",
            f"Commander: {chat_text(row.commander or 'none recorded')}",
            f"Gates: {acked} of {len(self.gates)} acknowledged; failures: {len(self.failures)};"
            f" lessons: {len(self.lessons)}",
            f"Evidence: {self.verification.count} records, {verified}, head {self.head_hash}",
            f"Full draft: {chat_text(draft)}",
        ]
        return "\n".join(lines)

    # -- the sections ---------------------------------------------------------------------------

    def _heading(self) -> str:
        lines = [
            f"# Postmortem: {md_text(self.incident.runbook.title)} ({md_code(self.row.id)})",
            "",
            "A draft drawn from the incident's evidence ledger alone; edit it before publishing.",
        ]
        if self.row.drill:
            lines += ["", "> **Drill**: this incident was a rehearsal (a drill), not a real one."]
        return "\n".join(lines)

    def _summary(self) -> str:
        row, info = self.row, self.incident.runbook
        status = md_text(row.status)
        waiting = self._waiting()
        if waiting:
            status += f" (waiting at {', '.join(md_code(gate) for gate in waiting)})"
        facts = [
            ("Incident", md_code(row.id)),
            ("Runbook", f"{md_code(info.id)} v{info.version}: {md_text(info.title)}"),
            ("Document", f"sha256 {md_code(info.sha256)}"),
            ("Kind", md_text(row.kind)),
            ("Severity", md_text(row.severity)),
            ("Drill or real", "drill (a rehearsal)" if row.drill else "real incident"),
            ("Status", status),
            ("Opened", _when(row.opened)),
            ("First response", _when(row.first_response) or "none recorded"),
            ("Contained", _when(row.contained) or "not recorded"),
            ("Closed", _when(row.closed) or f"not closed (the run is {md_text(row.status)})"),
            ("Time to respond", _duration(row.time_to_respond_s)),
            ("Time to contain", _duration(self.time_to_contain_s)),
            ("Time to recover", _duration(row.time_to_recover_s)),
            ("Commander", md_text(row.commander) if row.commander else "none recorded"),
        ]
        score = self._score()
        if score:
            facts.append(("Drill score", score))
        table = [_row("Fact", "Value"), _row("---", "---")]
        table += [_row(name, value) for name, value in facts]
        return "## Summary\n\n" + "\n".join(table)

    def _waiting(self) -> list[str]:
        finished = [e for e in self.entries if e.event is Event.RUN_FINISHED]
        waiting = finished[-1].data.get("waiting") if finished else None
        return [str(gate) for gate in waiting] if isinstance(waiting, list) else []

    def _score(self) -> str:
        scored = [e.data for e in self.entries if e.event is Event.DRILL_SCORED]
        if not scored:
            return ""
        last = scored[-1]
        counts = ", ".join(
            f"{md_text(last.get(key, '?'))} {label}"
            for key, label in (
                ("on_time", "on time"),
                ("late", "late"),
                ("missed", "missed"),
                ("failed", "failed"),
            )
        )
        duration = last.get("duration_s")
        took = _duration(duration) if isinstance(duration, int | float) else "?"
        return f"{counts}; drill time {took}"

    def _people(self) -> str:
        """Each person (or alert source) with what the ledger says they did, in order."""
        done: dict[str, list[str]] = {}
        started_by = self.incident.started_by
        if started_by:
            how, _, who = started_by.partition(":")
            # Records name a person as typed (`--by`), not as `cli:<user>`: one entry for both.
            name = who if how in ("cli", "slack", "drill") and who else started_by
            done.setdefault(name, []).append(
                f"opened the incident ({md_text(how)}) at {_when(self.row.opened)}"
            )
        titles = {span.id: span.title for span in self.spans}
        for entry in self.entries:
            if entry.actor == "engine":
                continue
            done.setdefault(entry.actor, []).append(self._deed(entry, titles))
        steps = [span for span in self.spans if not span.is_gate and span.records]
        counts: dict[str, int] = {}
        for span in steps:
            counts[str(span.status)] = counts.get(str(span.status), 0) + 1
        tally = ", ".join(f"{count} {status}" for status, count in counts.items())
        lines = ["## Who did what", ""]
        for person, deeds in done.items():
            lines.append(f"- **{md_text(person)}**")
            lines += [f"  - {deed}" for deed in deeds]
        ran = f"ran {len(steps)} step(s): {tally}" if steps else "ran no step"
        lines.append(f"- **engine** {ran}")
        return "\n".join(lines)

    def _deed(self, entry: Record, titles: dict[str, str]) -> str:
        at, data = _when(entry.ts), entry.data
        if entry.step is not None and entry.event in (*_ANSWERS, _REFUSED, Event.GATE_REJECTED):
            gate = f"gate {md_text(titles.get(entry.step, entry.step))} ({md_code(entry.step)})"
            if entry.event is Event.GATE_REJECTED:
                reason = md_text(_clip(str(data.get("reason", "")), entry.seq))
                return f"rejected {gate} at {at}: {reason or 'no reason recorded'}"
            if entry.event == _REFUSED:
                reason = md_text(_clip(str(data.get("reason", "")), entry.seq))
                return f"was refused at {gate} at {at}: {reason or 'no reason recorded'}"
            verb = "approved" if entry.event == _APPROVED else "acknowledged"
            note = str(data.get("note", ""))
            said = f": {md_text(_clip(note, entry.seq))}" if note.strip() else ""
            return f"{verb} {gate} at {at}{_tally(entry)}{said}"
        what = _PEOPLE_EVENTS.get(entry.event, md_text(entry.event))
        text = str(data.get("text", ""))
        said = f": {md_text(_clip(text, entry.seq))}" if text.strip() else ""
        return f"{what} at {at}{said}"

    def _timeline(self) -> str:
        table = [_row("Time", "Record", "Item", "What", "Detail")]
        table.append(_row("---", "---:", "---", "---", "---"))
        by_seq = {entry.seq: entry for entry in self.entries}
        for moment in self.moments:
            if moment.event is Event.STEP_STARTED and moment.what == "started":
                continue  # its outcome's record follows; a rollback's start is kept
            what, detail = _TIMELINE_NAMES.get(moment.event, moment.what), moment.detail
            entry = by_seq[moment.seq]
            if entry.event == _APPROVED:
                what = f"approved by {entry.actor}{_tally(entry)}"
                detail = str(entry.data.get("note", ""))
            elif entry.event == _REFUSED:
                what, detail = f"refused {entry.actor}", str(entry.data.get("reason", ""))
            if moment.event is Event.STEP_SUCCEEDED and (moment.attempt or 0) > 1:
                what += f" (attempt {moment.attempt})"
            what = f"**{md_text(what)}**" if moment.failed else md_text(what)
            item = md_code(moment.item) if moment.item else "run"
            cell = md_text(_clip(detail, moment.seq))
            table.append(_row(_when(moment.at), str(moment.seq), item, what, cell))
        return "## Timeline\n\n" + "\n".join(table)

    def _gates(self) -> str:
        gates = self.gates
        if not gates:
            return "## Gates and approvals\n\nThe runbook has no gates."
        acked = [gate for gate in gates if gate.status is ItemStatus.ACKNOWLEDGED]
        # The latest acknowledgement of each gate is the one its status shows.
        answers = {e.step: e for e in self.entries if e.event is Event.GATE_ACKNOWLEDGED}
        rejections = {e.step: e for e in self.entries if e.event is Event.GATE_REJECTED}
        table = [_row("Gate", "Title", "Status", "By", "When", "Via", "Approvals", "Note")]
        table.append(_row(*["---"] * 8))
        for gate in gates:
            answer = answers.get(gate.id) if gate.status is ItemStatus.ACKNOWLEDGED else None
            rejection = rejections.get(gate.id)
            if answer is None and rejection is not None:
                answer = rejection
            if answer is not None:
                by, when = md_text(answer.actor), _when(answer.ts)
                via = md_text(answer.data.get("channel", answer.data.get("via", "")))
                said = answer.data.get("reason" if answer is rejection else "note", "")
                note = md_text(_clip(str(said), answer.seq))
                status = "rejected" if answer is rejection else "acknowledged"
            else:
                by = via = note = ""
                waiting = gate.status is ItemStatus.WAITING
                status = "waiting" if waiting else md_text(gate.outcome)
                when = f"waiting since {_when(gate.start)}" if waiting else ""
            row = (md_code(gate.id), md_text(gate.title), status, by, when, via)
            table.append(_row(*row, self._approvals(gate.id), note))
        refused = [e for e in self.entries if e.event == _REFUSED and e.step is not None]
        lines = [f"{len(acked)} of {len(gates)} gate(s) acknowledged.", "", *table]
        if refused:
            lines += ["", f"Answers refused ({len(refused)}):", ""]
            lines += [
                f"- {_when(e.ts)} {md_text(e.actor)} at {md_code(str(e.step))}: "
                f"{md_text(_clip(str(e.data.get('reason', '')), e.seq)) or 'no reason recorded'}"
                for e in refused
            ]
        return "## Gates and approvals\n\n" + "\n".join(lines)

    def _clocks(self) -> list[str]:
        """The regulatory clocks section, when the runbook has clocks or the ledger started one."""
        rows = clock_rows(self.runbook, self.entries)
        if not rows:
            return []
        table = [_row("Clock", "Milestone", "Started", "Deadline", "Notified", "Outcome")]
        table.append(_row(*["---"] * 6))
        for row in rows:
            started = md_text(row.started)
            if row.reasoning:
                reasoning = row.reasoning
                if len(reasoning) > DETAIL_LIMIT:
                    reasoning = (
                        f"{reasoning[:DETAIL_LIMIT]}... (its clock.started record holds the rest)"
                    )
                started += f": {md_text(reasoning)}"
            notified = md_text(row.notified)
            if row.reference:
                notified += f", reference {md_text(row.reference)}"
            table.append(
                _row(
                    f"{md_code(row.clock)} ({md_text(row.source)})",
                    f"{md_text(row.milestone)} ({md_text(row.rule)})" if row.rule else "",
                    started,
                    md_text(row.deadline),
                    notified,
                    md_text(row.outcome),
                )
            )
        return ["## Regulatory clocks\n\n" + md_text(AID) + "\n\n" + "\n".join(table)]

    def _approvals(self, gate: str) -> str:
        """How many approved the gate: as its latest answer counted them where it recorded
        that, else each person who answered it once."""
        answered = [e for e in self.entries if e.step == gate and e.event in _ANSWERS]
        if not answered:
            return ""
        return _tally(answered[-1]).strip(" ()") or str(len({e.actor for e in answered}))

    def _failures(self) -> str:
        failures = self.failures
        if not failures:
            return (
                "## Failures\n\nNo step failed, no attempt was retried and every artifact was "
                "collected: no fallback was needed."
            )
        lines = ["## Failures", ""]
        for moment in failures:
            detail = _clip(moment.detail, moment.seq)
            said = f": {md_text(detail)}" if detail.strip() else ""
            lines.append(
                f"- {_when(moment.at)} {md_code(moment.item)} {md_text(moment.what)}{said}"
                f" (record {moment.seq})"
            )
        touched = dict.fromkeys(m.item for m in failures if m.item)
        outcomes = [span for span in self.spans if span.id in touched]
        if outcomes:
            lines += ["", "How each ended:", ""]
            lines += [f"- {md_code(span.id)}: {md_text(span.outcome)}" for span in outcomes]
        return "\n".join(lines)

    def _lessons(self) -> str:
        lines = ["## Lessons", ""]
        if self.lessons:
            lines += [self._quoted(entry) for entry in self.lessons]
        else:
            lines.append(
                "None recorded yet: write them here. A drill's lessons are recorded with "
                "`runbook drill note INCIDENT TEXT --by NAME --lesson`."
            )
        notes = [e for e in self.entries if e.event in (Event.NOTE, Event.DRILL_NOTE)]
        if notes:
            lines += ["", "### Notes", ""]
            lines += [self._quoted(entry) for entry in notes]
        return "\n".join(lines)

    def _quoted(self, entry: Record) -> str:
        text = md_text(_clip(str(entry.data.get("text", "")), entry.seq))
        who = "" if entry.actor == "engine" else f"{md_text(entry.actor)}, "
        where = f"{md_code(entry.step)}, " if entry.step else ""
        return f"- {text} ({who}{where}{_when(entry.ts)}, record {entry.seq})"

    def _verified(self) -> str:
        check, incident = self.verification, self.row.id
        command = f"`runbook evidence verify {incident}`"
        if check.ok:
            said = (
                f"Drawn from the evidence ledger of {md_code(incident)}: {command} passes with "
                f"{check.count} records, chain intact, head `{self.head_hash}`."
            )
        else:
            said = (
                f"**The ledger does not verify**: {md_text(check.problem)}. This draft may not "
                f"tell what happened; {command} names what is wrong. Head read: "
                f"{md_text(self.head_hash)}."
            )
        sealed = [e for e in self.entries if e.event is Event.EVIDENCE_SEALED]
        if sealed:
            last = sealed[-1].data
            said += (
                f" Sealed over {md_text(last.get('count', '?'))} records, Merkle root "
                f"{md_text(last.get('root', '?'))}."
            )
        return "## Verification\n\n" + said


def read_postmortem(folder: Path) -> Postmortem:
    """Read what a postmortem of the incident in `folder` is drawn from."""
    folder = Path(folder)
    try:
        incident = Incident.model_validate(json.loads((folder / INCIDENT_FILE).read_bytes()))
    except (OSError, ValueError):
        raise RunbookError(
            f"{folder / INCIDENT_FILE}: not an incident record; is {folder} an incident's "
            "evidence folder? `runbook evidence list` shows the known incidents"
        ) from None
    row = census_row(folder)
    if row is None:  # incident.json was replaced as it was read
        raise RunbookError(f"{folder / INCIDENT_FILE}: not an incident record")
    runbook = parse_runbook(folder / DOCUMENT_FILE)
    entries, progress = read_entries(folder)
    rollbacks = find_rollbacks(entries)
    return Postmortem(
        incident=incident,
        runbook=runbook,
        row=row,
        entries=entries,
        spans=read_spans(runbook, entries, progress),
        moments=story(entries, rollbacks),
        verification=verify_ledger(folder),
    )


def postmortem_markdown(folder: Path) -> str:
    """A postmortem draft of the incident in `folder`, as Markdown, from its evidence alone."""
    return read_postmortem(folder).markdown()

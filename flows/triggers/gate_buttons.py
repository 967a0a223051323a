"""Gate buttons in Slack: Acknowledge and Reject open a dialog; its submission is the answer.

A press opens the dialog at once, in the request (Slack takes a dialog only within 3 s of the
press, by its trigger_id), asking for a note (to acknowledge, optional) or a reason (to reject,
required). The submission, a request Slack signs like any other, records the answer as the user
who submitted it, queues the resume the answer needs, updates the gate message (who approved so
far, who acknowledged or rejected it) and tells the person, and only them, what their answer
amounted to when the message does not show it: a refusal and its reason, an approval short of
the quorum. Where no dialog can be opened (a press without a trigger_id, a chat system without
dialogs), Acknowledge answers directly, and Reject says a reason is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows.contract.ports import ChatDialogs, ChatSystem
from flows.engine.authority import GateDecision, Outcome
from flows.engine.runner import acknowledge_gate
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import DOCUMENT_FILE, incident_folder, load_incident
from flows.runbook.identity import slack_identity
from flows.runbook.model import Gate
from flows.runbook.parse import parse_runbook
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind
from integrations.sandbox import DrillChat
from integrations.slack import ChatError
from integrations.slack import commands as slack
from integrations.slack.mrkdwn import escape
from integrations.slack.replies import without_paths

LOG = logging.getLogger("runbook.slack")
CLOSE = {"response_action": "clear"}
"""The answer to a dialog's submission that closes it."""
NO_DIALOG_REJECT = (
    "A rejection needs a reason, asked for in a dialog Slack could not open here; nothing was"
    " recorded. Press Reject again, or reject it where you can give the reason."
)


@dataclass(frozen=True)
class _Answer:
    """One answer at a gate from Slack: who, where the gate message is, and the text given."""

    incident: str
    gate: str
    answer: slack.Answer
    user_id: str
    user_name: str
    channel_id: str
    message_ts: str
    text: str


@dataclass
class GateButtons:
    """Answers gate presses and dialog submissions (already verified and seen only once)."""

    settings: Settings
    intake: Intake
    chat: ChatSystem | None = None
    user_groups_of: Callable[[str], set[str]] | None = None

    def press(self, click: slack.GateClick) -> None:
        """Open the press's dialog; without one, acknowledge directly or ask for a reason."""
        if self._open_dialog(click):
            return
        if click.answer is slack.Answer.REJECT:
            self._tell(click.channel_id, click.user_id, NO_DIALOG_REJECT)
            return
        self._answer(
            _Answer(
                click.incident,
                click.gate,
                click.answer,
                click.user_id,
                click.user_name,
                click.channel_id,
                click.message_ts,
                f"acknowledged in Slack by <@{click.user_id}>",
            )
        )

    def submit(self, submitted: slack.GateSubmission) -> dict[str, Any]:
        """Record the dialog's answer; the reply closes the dialog."""
        self._answer(
            _Answer(
                submitted.incident,
                submitted.gate,
                submitted.answer,
                submitted.user_id,
                submitted.user_name,
                submitted.channel_id,
                submitted.message_ts,
                submitted.text,
            )
        )
        return CLOSE

    def _open_dialog(self, click: slack.GateClick) -> bool:
        """True when the press was answered with a dialog (or a word on why it could not be)."""
        if not click.trigger_id or not isinstance(self.chat, ChatDialogs):
            return False
        title, gate, _ = self._gate(click.incident, click.gate)
        view = slack.gate_dialog(
            click.incident, gate, title, click.answer, click.channel_id, click.message_ts
        )
        try:
            opened = self.chat.open_modal(click.trigger_id, view)
        except ChatError as error:
            # Recording nothing is right: the press asked for a dialog, not for an answer.
            self._tell(
                click.channel_id,
                click.user_id,
                f"Slack did not open the dialog ({escape(without_paths(str(error)))});"
                " nothing was recorded. Press the button again.",
            )
            return True
        return opened

    def _answer(self, answer: _Answer) -> None:
        """Record the answer as the Slack user, queue the resume it needs, and say what it did."""
        # A token pasted into a note is redacted before it reaches the evidence, as the intake
        # redacts what is typed into a command.
        note, _ = self.intake.redactor.redact(answer.text)
        decision = acknowledge_gate(
            self.settings,
            answer.incident,
            answer.gate,
            slack_identity(answer.user_id, answer.user_name, self.user_groups_of),
            note=note,
            reject=answer.answer is slack.Answer.REJECT,
        )
        if decision.outcome in (Outcome.ACKNOWLEDGED, Outcome.REJECTED):
            folder = incident_folder(self.settings.incidents_dir, answer.incident)
            self.intake.enqueue(JobKind.RESUME, answer.incident, str(folder / DOCUMENT_FILE), {})
        title, gate, drill = self._gate(answer.incident, answer.gate)
        self._show(decision, answer, title, gate, note, drill=drill)
        reply = _reply(decision, gate)
        if reply:
            self._tell(answer.channel_id, answer.user_id, reply)

    def _gate(self, incident_id: str, gate_id: str) -> tuple[str, Gate, bool]:
        """The runbook's title, the gate as run, and whether the incident is a drill."""
        incident = load_incident(self.settings.incidents_dir, incident_id)
        folder = incident_folder(self.settings.incidents_dir, incident_id)
        runbook = parse_runbook(folder / DOCUMENT_FILE)
        gate = next((g for g in runbook.gates if g.id == gate_id), None)
        if gate is None:  # acknowledge_gate says so first when answering; a press is told here
            known = ", ".join(g.id for g in runbook.gates) or "none"
            raise RunbookError(
                f"runbook {runbook.id!r} has no gate {gate_id!r}; its gates: {known}"
            )
        return incident.runbook.title, gate, incident.drill

    def _show(
        self,
        decision: GateDecision,
        answer: _Answer,
        title: str,
        gate: Gate,
        note: str,
        *,
        drill: bool,
    ) -> None:
        """Update the gate message with what the answer did; nothing for one that did nothing."""
        if self.chat is None or not answer.channel_id or not answer.message_ts:
            return
        incident = answer.incident
        match decision.outcome:
            case Outcome.ACKNOWLEDGED:
                blocks = slack.gate_acknowledged_blocks(
                    incident, gate, title, answer.user_id, decision.approvals
                )
                text = f"{gate.title}: acknowledged"
            case Outcome.APPROVED:
                blocks = slack.gate_approved_blocks(
                    incident, gate, title, decision.approvals, decision.needed
                )
                text = f"{gate.title}: approved, {len(decision.approvals)} of {decision.needed}"
            case Outcome.REJECTED:
                blocks = slack.gate_rejected_blocks(incident, gate, title, answer.user_id, note)
                text = f"{gate.title}: rejected"
            case _:
                return
        chat = DrillChat(self.chat, pinned=answer.channel_id) if drill else self.chat
        try:
            chat.update(answer.channel_id, answer.message_ts, text, blocks)
        except ChatError as error:  # the answer is recorded; a stale message is only cosmetic
            LOG.warning("could not update the gate message: %s", error)

    def _tell(self, channel: str, user: str, text: str) -> None:
        """Say `text` to the user alone; a reply Slack refuses is logged, the answer stands."""
        if not isinstance(self.chat, ChatDialogs) or not channel:
            LOG.info("no private reply to %s: %s", user, text)
            return
        try:
            self.chat.tell(channel, user, text)
        except ChatError as error:
            LOG.warning("could not tell %s: %s (%s)", user, text, error)


def _reply(decision: GateDecision, gate: Gate) -> str:
    """What the person who answered is told alone: what the gate message does not show."""
    name = f"*{escape(gate.title)}*"
    match decision.outcome:
        case Outcome.REFUSED:
            return f"{name}: your answer was not counted: {escape(without_paths(decision.reason))}"
        case Outcome.APPROVED:
            count = len(decision.approvals)
            more = slack.waiting_for(decision.needed - count)
            return f"{name}: approved, {count} of {decision.needed}: {more}."
        case Outcome.ALREADY:
            return f"{name} was already acknowledged; nothing was recorded."
    return ""

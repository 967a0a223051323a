"""Slack requests as engine actions: `/runbook` commands and gate buttons, answered in time.

Both handlers only validate, record and queue: a command queues a start job, a gate button opens
its dialog, whose submission records the answer in the evidence and queues a resume
(`flows.triggers.gate_buttons`). Slack gets its answer at once. Each
command and press is acted on once: its trigger_id is remembered by the intake, so a copy sent
again (a replay, or Socket Mode delivering it twice) is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flows.contract.ports import ChatSystem
from flows.drills.scenario import load_scenario
from flows.engine.settings import Settings
from flows.engine.status import incident_status, open_incidents
from flows.errors import RunbookError
from flows.runbook.identity import slack_identity
from flows.runbook.inputs import resolve_inputs
from flows.runbook.model import Runbook
from flows.triggers.gate_buttons import CLOSE, GateButtons
from flows.triggers.intake import REPLAY_WINDOW_S, Intake
from flows.triggers.jobs import JobKind
from flows.triggers.steering import steer
from integrations.alerts import PayloadError
from integrations.slack import commands as slack
from integrations.slack import replies
from integrations.slack.mrkdwn import escape

LOG = logging.getLogger("runbook.slack")
REPLAYED = "This request reached the server before and was acted on then; nothing was done now."


@dataclass
class SlackHandlers:
    """Handles verified Slack request bodies; returns the JSON body Slack shows the user."""

    settings: Settings
    runbooks: list[Runbook]
    intake: Intake
    chat: ChatSystem | None = None
    user_groups_of: Callable[[str], set[str]] | None = None

    def _by_command(self) -> dict[str, Runbook]:
        return {r.meta.triggers.slack.command: r for r in self.runbooks if r.meta.triggers.slack}

    def command(self, body: bytes) -> dict[str, Any]:
        """Answer one `/runbook ...` slash command."""
        command = slack.parse_command(body)
        if not self._first_sighting(command.trigger_id):
            return slack.ephemeral(REPLAYED)
        try:
            request = slack.parse_command_text(command.text)
        except PayloadError as error:  # the user's typo: Slack shows a 4xx only as "failed"
            return slack.ephemeral(error.reason)
        try:
            return self._answer(request, command)
        except RunbookError as error:
            return slack.ephemeral(replies.plain_error(error))

    def _answer(self, request: slack.CommandRequest, command: slack.SlashCommand) -> dict[str, Any]:
        startable = self._by_command()
        match request.kind:
            case slack.Kind.LIST:
                return self._list(startable, command)
            case slack.Kind.DRILL if request.name:
                return self._drill(request.name, command)
            case slack.Kind.STATUS if request.incident:
                return slack.ephemeral(self._status(request.incident, command))
            case slack.Kind.STATUS:
                return slack.ephemeral(replies.open_incidents(*self._open_incidents(command)))
            case kind if kind in slack.STEERING:
                return steer(request, command, self.settings, self.intake, self.user_groups_of)
            case slack.Kind.RUN if request.name:
                return self._start(startable, request.name, request.inputs, command)
            case slack.Kind.HELP if request.name:
                return slack.ephemeral(self._help(startable, request.name))
        return slack.ephemeral(self._general_help(startable))

    def _general_help(self, startable: dict[str, Runbook]) -> str:
        return replies.help_text([(name, r.meta.title) for name, r in sorted(startable.items())])

    def _help(self, startable: dict[str, Runbook], name: str) -> str:
        """One runbook's help, found by its Slack command or its id."""
        runbook = startable.get(name) or next((r for r in self.runbooks if r.id == name), None)
        if runbook is None:
            return f"No runbook `{name}` here.\n" + self._general_help(startable)
        return replies.runbook_help(runbook)

    def _first_sighting(self, trigger_id: str) -> bool:
        """False when a request with this trigger_id was acted on before (within the window)."""
        if not trigger_id:
            return True
        until = time.time() + REPLAY_WINDOW_S
        return self.intake.first_sighting([f"slack-trigger:{trigger_id}"], until)

    def _list(self, startable: dict[str, Runbook], command: slack.SlashCommand) -> dict[str, Any]:
        """The runbooks this user may start from this channel."""
        mine = [
            (name, f"{r.meta.title} ({r.meta.severity})")
            for name, r in sorted(startable.items())
            if self._allowed(r, command)
        ]
        if not mine:
            return slack.ephemeral("There is no runbook you may start from here.")
        lines = [f"`/runbook {name}`: {what}" for name, what in mine]
        return slack.ephemeral("Runbooks you can start:\n" + "\n".join(lines))

    def _start(
        self,
        startable: dict[str, Runbook],
        name: str,
        given: dict[str, str],
        command: slack.SlashCommand,
    ) -> dict[str, Any]:
        """Queue a start of the runbook the command names, when this user may start it here."""
        runbook = startable.get(name)
        if runbook is None:
            return slack.ephemeral(f"No runbook answers `/runbook {name}`. Try `/runbook list`.")
        if not self._allowed(runbook, command):
            return slack.ephemeral(
                f"You may not start `{runbook.id}` from here (allowed: "
                f"{', '.join(runbook.meta.triggers.slack.allowed)})."  # type: ignore[union-attr]
            )
        secret = sorted(name for name in given if _is_secret_input(runbook, name))
        if secret:
            # The intake would have to keep it until a worker starts the run.
            what = "is a secret input" if len(secret) == 1 else "are secret inputs"
            return slack.ephemeral(
                f"Not started: {', '.join(secret)} {what}, never taken from Slack."
                " Start this runbook from a terminal, where secret inputs can be given."
            )
        # What was typed is kept by the intake: a token pasted into it is redacted before that,
        # as the run's own records would redact it. Defaults come from the runbook, untouched.
        typed, _ = self.intake.redactor.redact(given)
        try:
            inputs = resolve_inputs(runbook, typed)
        except RunbookError as error:
            return slack.ephemeral(f"Not started: {replies.plain_error(error)}")
        incident = self.intake.start(
            JobKind.START,
            runbook.id,
            str(runbook.path),
            {"inputs": inputs, "started_by": f"slack:{command.user_name}"},
        )
        LOG.info("%s started %s as %s", command.user_name, runbook.id, incident)
        return slack.in_channel(
            f"Starting *{runbook.meta.title}* as incident `{incident}`"
            f" (requested by <@{command.user_id}>)."
        )

    def _drill(self, name: str, command: slack.SlashCommand) -> dict[str, Any]:
        """Queue a drill of a scenario in the library's drills/ folder.

        Its gates are answered with buttons in the drill channel when one is set, from the
        scenario's script otherwise."""
        folders = {r.path.parent.parent for r in self.runbooks}
        folders |= {r.path.parent for r in self.runbooks}
        found = [
            path
            for folder in sorted(folders)
            for path in sorted((folder / "drills").glob("*.yaml"))
            if path.stem == name
        ]
        if not found:
            return slack.ephemeral(f"No drill scenario `{name}` in the library's drills/ folder.")
        loaded = load_scenario(found[0])
        # The id is only the job's key; the drill names its own incident.
        self.intake.start(
            JobKind.DRILL,
            f"drill-{name}",
            str(found[0]),
            {"started_by": f"slack:{command.user_name}"},
        )
        return slack.in_channel(
            f"Starting drill *{loaded.scenario.title}* of `{loaded.runbook.id}`"
            f" (requested by <@{command.user_id}>). Everything goes to the drill sandboxes."
        )

    def interaction(self, body: bytes) -> dict[str, Any] | None:
        """Handle a gate button press (open its dialog) or a gate dialog's submission (record
        the answer, queue the resume); `flows.triggers.gate_buttons` says how."""
        parsed = slack.parse_interaction(body)
        if parsed is None:
            return None
        submitted = isinstance(parsed, slack.GateSubmission)
        if not self._first_sighting(parsed.trigger_id):
            # A dialog shows no text reply: a copy of its submission, acted on once, closes it.
            return CLOSE if submitted else slack.ephemeral(REPLAYED)
        buttons = GateButtons(self.settings, self.intake, self.chat, self.user_groups_of)
        if isinstance(parsed, slack.GateSubmission):
            return buttons.submit(parsed)
        buttons.press(parsed)
        return None

    def _allowed(self, runbook: Runbook, command: slack.SlashCommand) -> bool:
        trigger = runbook.meta.triggers.slack
        return trigger is not None and slack.is_allowed(
            trigger.allowed, command, self.user_groups_of
        )

    def _status(self, incident: str, command: slack.SlashCommand) -> str:
        """Where one incident stands, when this Slack user may see it (the runbook's steering)."""
        if not (self.settings.incidents_dir / incident / "incident.json").exists():
            return f"No incident `{escape(incident)}` here. `/runbook status` lists the open ones."
        me = slack_identity(command.user_id, command.user_name)
        decision, found = incident_status(self.settings, incident, me)
        if found is None:
            return f"Not shown: {escape(decision.reason)}"
        lines = [f"`{escape(item)}`: {status}" for item, status in found.steps.items()]
        lines += [
            f":alarm_clock: *{escape(clock.title)}*: {escape(clock.summary)}"
            for clock in found.clocks
        ]
        who = f", commander {escape(found.commander)}" if found.commander else ""
        head = f"Incident `{escape(found.id)}` ({found.severity}{who}): {found.status}"
        return head + "\n" + ("\n".join(lines) or "not started yet")

    def _open_incidents(
        self, command: slack.SlashCommand
    ) -> tuple[list[replies.OpenIncident], int]:
        """The open incidents this Slack user may see, newest first, as many as are shown, and
        how many there are."""
        me = slack_identity(command.user_id, command.user_name)
        found = sorted(open_incidents(self.settings, me), key=lambda s: s.started_at, reverse=True)
        shown = [
            replies.OpenIncident(
                s.id, s.title, s.status, s.started_at, tuple(s.titles.get(g, g) for g in s.waiting)
            )
            for s in found[: replies.SHOWN_INCIDENTS]
        ]
        return shown, len(found)


def _is_secret_input(runbook: Runbook, name: str) -> bool:
    declared = runbook.meta.inputs.get(name)
    return declared is not None and declared.secret

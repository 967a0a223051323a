"""Slack requests as engine actions: `/runbook` commands and gate buttons, answered in time.

Both handlers only validate, record and queue: a command queues a start job, a button records
the acknowledgement in the evidence and queues a resume. Slack gets its answer at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.contract.ports import ChatSystem
from flows.drills.scenario import load_scenario
from flows.engine.runner import acknowledge_gate
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.incident import DOCUMENT_FILE, incident_folder, load_incident, new_incident_id
from flows.evidence.progress import progress_from_records
from flows.evidence.verify import read_records
from flows.runbook.identity import slack_identity
from flows.runbook.inputs import resolve_inputs
from flows.runbook.model import Runbook
from flows.runbook.parse import parse_runbook
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind
from integrations.alerts import PayloadError
from integrations.sandbox import DrillChat
from integrations.slack import commands as slack

LOG = logging.getLogger("runbook.slack")


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
        try:
            request = slack.parse_command_text(command.text)
        except PayloadError as error:  # the user's typo: Slack shows a 4xx only as "failed"
            return slack.ephemeral(error.reason)
        startable = self._by_command()
        match request.kind:
            case slack.Kind.LIST:
                return self._list(startable, command)
            case slack.Kind.DRILL if request.name:
                return self._drill(request.name, command)
            case slack.Kind.STATUS if request.incident:
                return slack.ephemeral(self._status(request.incident))
            case slack.Kind.RUN if request.name:
                return self._start(startable, request.name, request.inputs, command)
        return slack.ephemeral(
            slack.help_text([(name, r.meta.title) for name, r in sorted(startable.items())])
        )

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
                f" Start it from a terminal: `runbook run {runbook.path}"
                + "".join(f" --input {name}=..." for name in secret)
                + "`."
            )
        # What was typed is kept by the intake: a token pasted into it is redacted before that,
        # as the run's own records would redact it. Defaults come from the runbook, untouched.
        typed, _ = self.intake.redactor.redact(given)
        try:
            inputs = resolve_inputs(runbook, typed)
        except RunbookError as error:
            problems = "; ".join(
                p.message + (f" ({p.hint})" if p.hint else "") for p in error.problems
            )
            return slack.ephemeral(f"Not started: {problems}")
        incident = new_incident_id(runbook.id)
        self.intake.enqueue(
            JobKind.START,
            incident,
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
        incident = new_incident_id(f"drill-{name}")  # the job's key; the drill names its own
        self.intake.enqueue(
            JobKind.DRILL, incident, str(found[0]), {"started_by": f"slack:{command.user_name}"}
        )
        return slack.in_channel(
            f"Starting drill *{loaded.scenario.title}* of `{loaded.runbook.id}`"
            f" (requested by <@{command.user_id}>). Everything goes to the drill sandboxes."
        )

    def interaction(self, body: bytes) -> dict[str, Any] | None:
        """Handle a button press: acknowledge the gate, queue the resume, update the message."""
        click = slack.parse_interaction(body)
        if click is None:
            return None
        decision = acknowledge_gate(
            self.settings,
            click.incident,
            click.gate,
            slack_identity(click.user_id, click.user_name, self.user_groups_of),
            note=f"acknowledged in Slack by <@{click.user_id}>",
        )
        if decision.acknowledged:
            folder = incident_folder(self.settings.incidents_dir, click.incident)
            incident = load_incident(self.settings.incidents_dir, click.incident)
            self.intake.enqueue(JobKind.RESUME, click.incident, str(folder / DOCUMENT_FILE), {})
            self._mark_acknowledged(click, incident.runbook.title, drill=incident.drill)
        return None

    def _mark_acknowledged(self, click: slack.GateClick, title: str, *, drill: bool) -> None:
        if self.chat is None or not click.channel_id or not click.message_ts:
            return
        chat = DrillChat(self.chat, pinned=click.channel_id) if drill else self.chat
        folder = incident_folder(self.settings.incidents_dir, click.incident)
        runbook = parse_runbook(folder / DOCUMENT_FILE)
        gate = next((g for g in runbook.gates if g.id == click.gate), None)
        if gate is None:
            return
        blocks = slack.gate_acknowledged_blocks(click.incident, gate, title, click.user_name)
        try:
            chat.update(click.channel_id, click.message_ts, f"{gate.title}: acknowledged", blocks)
        except Exception as error:  # the ack is recorded; a stale button is only cosmetic
            LOG.warning("could not update the gate message: %s", error)

    def _allowed(self, runbook: Runbook, command: slack.SlashCommand) -> bool:
        trigger = runbook.meta.triggers.slack
        return trigger is not None and slack.is_allowed(
            trigger.allowed, command, self.user_groups_of
        )

    def _status(self, incident: str) -> str:
        folder: Path = self.settings.incidents_dir / incident
        if not (folder / "incident.json").exists():
            return f"No incident `{incident}` here."
        progress = progress_from_records(read_records(folder))
        lines = [f"`{item}`: {status}" for item, status in progress.statuses.items()]
        return f"Incident `{incident}`:\n" + ("\n".join(lines) or "not started yet")


def _is_secret_input(runbook: Runbook, name: str) -> bool:
    declared = runbook.meta.inputs.get(name)
    return declared is not None and declared.secret

"""`/runbook resume|retry|skip|abort|assign|severity|note INCIDENT ...`: steering from Slack.

The person acting is the user of the request Slack signed, matched to the roster, never a name
typed in the text. Each act, or its refusal, goes into the incident's ledger through
`flows.engine.steering`. An act is answered in the channel, a refusal only to who typed it. A
resume, retry or skip queues a resume job: the run continues on a worker, not in the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.engine import steering
from flows.engine.settings import Settings
from flows.engine.steerers import SteerDecision
from flows.evidence.incident import DOCUMENT_FILE, incident_folder
from flows.runbook.identity import Identity, slack_identity
from flows.triggers.intake import Intake
from flows.triggers.jobs import JobKind
from integrations.slack import commands as slack
from integrations.slack.mrkdwn import escape
from integrations.slack.replies import without_paths

RESUMING = frozenset({slack.Kind.RESUME, slack.Kind.RETRY, slack.Kind.SKIP})
"""The acts after which the run continues (a resume job is queued)."""


def steer(
    request: slack.CommandRequest,
    command: slack.SlashCommand,
    settings: Settings,
    intake: Intake,
    user_groups_of: Callable[[str], set[str]] | None = None,
) -> dict[str, Any]:
    """Answer one steering command as the Slack user who sent it.

    A RunbookError (no such incident, step or role) is left to the caller to answer.
    """
    identity = slack_identity(command.user_id, command.user_name, user_groups_of)
    decision = _decide(request, settings, identity)
    if not decision.allowed:
        return slack.ephemeral(f"Refused: {_shown(decision.reason)}")
    if request.kind in RESUMING:
        folder = incident_folder(settings.incidents_dir, decision.incident)
        intake.enqueue(JobKind.RESUME, decision.incident, str(folder / DOCUMENT_FILE), {})
    return slack.in_channel(f"{_shown(decision.message)} (<@{command.user_id}>)")


def _decide(request: slack.CommandRequest, settings: Settings, identity: Identity) -> SteerDecision:
    incident = request.incident or ""
    text = request.text or ""
    match request.kind:
        case slack.Kind.RETRY:
            return steering.retry_step(settings, incident, identity, request.step or "")
        case slack.Kind.SKIP:
            return steering.skip_step(settings, incident, identity, request.step or "", text)
        case slack.Kind.ABORT:
            return steering.abort_incident(settings, incident, identity, text)
        case slack.Kind.ASSIGN:
            role, person = request.role or "", request.person or ""
            return steering.assign_role(settings, incident, identity, role, person)
        case slack.Kind.SEVERITY:
            return steering.set_severity(settings, incident, identity, text)
        case slack.Kind.NOTE:
            return steering.add_note(settings, incident, identity, text)
    return steering.request_resume(settings, incident, identity)


def _shown(text: str) -> str:
    """Engine text for a Slack reply: no server paths, nothing Slack would read as markup."""
    return escape(without_paths(text))

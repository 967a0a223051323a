"""`runbook postmortem`: a postmortem draft from an incident's evidence, and its chat summary.

The draft is Markdown for the team's wiki. Chat gets a short summary with the key figures, not
the draft: Slack caps a message near 40,000 characters, reads mrkdwn rather than Markdown, and
the chat systems the engine speaks to post messages, not files. The summary says where the
full draft is. It is posted once per state of the ledger: its dedupe key names the ledger head,
so posting again changes nothing until the evidence does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from flows.cli.common import EXIT_OK, err, evidence_folder, settings
from flows.contract.ports import ChatSystem
from flows.engine.runner import default_backends
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.evidence.postmortem import Postmortem, read_postmortem
from flows.files import write_atomically
from integrations.sandbox import drill_backends
from integrations.slack import ChatError
from integrations.slack.local import echo_to_stderr


def postmortem(
    incident: str,
    *,
    out: Path | None = None,
    post: Annotated[bool, Parameter(negative="")] = False,
    channel: str | None = None,
) -> int:
    """Draft a postmortem from an incident's evidence: Markdown on stdout (or to --out).

    `--post` sends a summary with the key figures to the incident's channel (the one
    `slack.create_channel` opened, else the runbook's `owner` channel, or `--channel`), once:
    posting again changes nothing until the evidence does. A drill's goes where its messages
    went, never to a real channel.
    """
    current = settings()
    found = read_postmortem(evidence_folder(current, incident))
    draft = found.markdown()
    if out is not None:
        write_atomically(out, draft.encode())
        err(f"postmortem draft of {found.row.id} written to {out}")
    else:
        print(draft, end="")
    if post:
        where = str(out.resolve()) if out else f"`runbook postmortem {found.row.id}` prints it"
        _post(current, found, where, channel)
    return EXIT_OK


def _post(current: Settings, found: Postmortem, where: str, channel: str | None) -> None:
    """Post the summary once to the incident's channel; say where it went."""
    incident = found.row.id
    if not found.verification.ok:
        raise RunbookError(
            f"the evidence of {incident} does not verify ({found.verification.problem}); "
            f"nothing was posted: check it with `runbook evidence verify {incident}`"
        )
    chat = _chat_of(current, found)
    owner = found.runbook.meta.owner
    target = channel or chat.incident_channel(incident) or (owner if _is_channel(owner) else None)
    if target is None:
        raise RunbookError(
            f"incident {incident} opened no channel and its runbook's owner {owner!r} is not "
            "a channel: name one with --channel '#name'"
        )
    key = f"{incident}:postmortem:{found.verification.head_hash or 'empty'}"
    try:
        message = chat.post(target, found.summary(where), key)
    except ChatError as error:
        raise RunbookError(
            f"the postmortem summary of {incident} was not posted: {error}"
        ) from None
    err(f"postmortem summary of {incident} is in {target} ({chat.name} message {message.ts})")


def _chat_of(current: Settings, found: Postmortem) -> ChatSystem:
    """The chat system the incident's messages went to."""
    chat = default_backends(current).chat
    if not found.incident.drill:
        return chat
    # A drill's messages went to the drill outbox, or to the Slack channel set aside for drills
    # (flows.drills.drill chooses the same way): its postmortem never reaches an on-call channel.
    pinned = current.slack_drill_channel if current.slack() is not None else None
    return drill_backends(current.home, echo_to_stderr, live_chat=chat, drill_channel=pinned)[1]


def _is_channel(owner: str) -> bool:
    """Whether the runbook's owner names a channel (`#name`) rather than a team or a person."""
    return owner.startswith("#") and len(owner) > 1

"""The `jira.*` actions: open, comment on and move tickets in the run's ticket system.

They act through `ctx.tickets`, so the same step reaches Jira, the local store or a drill sandbox.
People read tickets: text written to them passes through `ctx.redact` first.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from flows.actions import Action, ActionContext
from flows.errors import StepFailed
from integrations.jira import TicketNotFound
from integrations.protocols import NewTicket

PROJECT_KEY = r"^[A-Z][A-Z0-9_]*$"
ISSUE_KEY = r"^[A-Z][A-Z0-9_]*-[0-9]+$"

Label = Annotated[str, Field(pattern=r"^\S+$")]


class CreateIssueArgs(BaseModel):
    """Arguments of `jira.create_issue`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(pattern=PROJECT_KEY, description="Project key, e.g. `SEC`.")
    summary: str = Field(
        min_length=1, max_length=255, description="One-line title (Jira allows 255 characters)."
    )
    description: str = Field(default="", description="Body of the ticket.")
    issue_type: str = Field(
        default="Task", min_length=1, description="Issue type name, e.g. `Task`, `Bug`, `Incident`."
    )
    priority: str | None = Field(
        default=None, description="Priority name, e.g. `Highest`; empty keeps the project default."
    )
    labels: list[Label] = Field(
        default_factory=list, description="Labels to set; a label has no spaces."
    )


class CommentArgs(BaseModel):
    """Arguments of `jira.comment`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(
        pattern=ISSUE_KEY, description="Key of the ticket, e.g. `{{ steps.ticket.outputs.key }}`."
    )
    body: str = Field(min_length=1, description="Text of the comment.")


class TransitionArgs(BaseModel):
    """Arguments of `jira.transition`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(
        pattern=ISSUE_KEY, description="Key of the ticket, e.g. `{{ steps.ticket.outputs.key }}`."
    )
    status: str = Field(
        min_length=1, description="Status to move the ticket to, e.g. `In Progress`, `Done`."
    )


def create_issue(args: CreateIssueArgs, ctx: ActionContext) -> dict[str, str]:
    """Open a ticket for the incident (once per incident and step); return its key and URL."""
    ticket = ctx.tickets.create_issue(
        NewTicket(
            project=args.project,
            summary=ctx.redact(args.summary),
            description=ctx.redact(args.description),
            issue_type=args.issue_type,
            priority=args.priority,
            labels=tuple(args.labels),
            incident=ctx.incident,
        ),
        ctx.dedupe_key,
    )
    return {"key": ticket.key, "url": ticket.url}


def comment(args: CommentArgs, ctx: ActionContext) -> dict[str, str]:
    """Comment on a ticket (once per incident and step); return the comment's id."""
    try:
        comment_id = ctx.tickets.comment(args.issue, ctx.redact(args.body), ctx.dedupe_key)
    except TicketNotFound as err:
        raise StepFailed(f"{err}: check the `issue` key") from err
    return {"id": comment_id}


def transition(args: TransitionArgs, ctx: ActionContext) -> dict[str, str]:
    """Move a ticket to a status (a no-op when it is there already); return key and status."""
    try:
        ticket = ctx.tickets.transition(args.issue, args.status)
    except TicketNotFound as err:
        raise StepFailed(f"{err}: check the `issue` key") from err
    return {"key": ticket.key, "status": ticket.status}


ACTIONS = (
    Action(
        name="jira.create_issue",
        args=CreateIssueArgs,
        run=create_issue,
        outputs=("key", "url"),
        description="Open a ticket; re-running the step returns the same ticket.",
    ),
    Action(
        name="jira.comment",
        args=CommentArgs,
        run=comment,
        outputs=("id",),
        description="Add a comment to a ticket; re-running the step adds it once.",
    ),
    Action(
        name="jira.transition",
        args=TransitionArgs,
        run=transition,
        outputs=("key", "status"),
        description="Move a ticket to another status; moving it where it is does nothing.",
    ),
)

"""The `jira.*` actions: open, comment on, move, attach to and link tickets in the run's system.

They act through `ctx.tickets`, so the same step reaches Jira, the local store or a drill sandbox.
People read tickets: text written to them passes through `ctx.redact` first. Descriptions and
comments are Jira wiki markup: a value a template puts in them is escaped (`WikiText`), so an
alert label cannot mention someone, link or embed an image; the template's own text stays markup.
Summaries and link titles are plain text in Jira and are sent as they are. Text longer than Jira
keeps (a summary, a label, a description or comment) is cut by the Jira backend, not refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from flows.contract.actions import Action, ActionContext, Reach
from flows.contract.ports import NewTicket
from flows.errors import StepFailed
from flows.runbook.templates import Escaped
from integrations.jira import TicketNotFound
from integrations.jira.wiki import escape

PROJECT_KEY = r"^[A-Z][A-Z0-9_]*$"
ISSUE_KEY = r"^[A-Z][A-Z0-9_]*-[0-9]+$"
ISSUE_HELP = "Key of the ticket, e.g. `{{ steps.ticket.key }}` (the `key` output of step `ticket`)."
PRIORITY_BY_SEVERITY = {
    "sev1": "Highest",
    "sev2": "High",
    "sev3": "Medium",
    "sev4": "Low",
    "sev5": "Lowest",
}

Label = Annotated[str, Field(pattern=r"^\S+$")]
WikiText = Annotated[str, Escaped(escape)]
"""Wiki markup, in which the values templates interpolate are escaped."""


class CreateIssueArgs(BaseModel):
    """Arguments of `jira.create_issue`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: str = Field(pattern=PROJECT_KEY, description="Project key, e.g. `SEC`.")
    summary: str = Field(
        min_length=1,
        description="One-line title; Jira keeps 255 characters, so a longer one is cut to end in"
        " `… [truncated]` and given whole at the top of the description.",
    )
    description: WikiText = Field(
        default="",
        description="Body of the ticket; empty uses the incident brief (runbook, inputs, prose).",
    )
    issue_type: str = Field(
        default="Task", min_length=1, description="Issue type name, e.g. `Task`, `Bug`, `Incident`."
    )
    priority: str | None = Field(
        default=None,
        description=(
            "Priority name, e.g. `Highest`; empty follows the runbook's severity"
            " (sev1 Highest, sev2 High, sev3 Medium, sev4 Low, sev5 Lowest)."
        ),
    )
    labels: list[Label] = Field(
        default_factory=list, description="Labels to set; a label has no spaces."
    )
    components: list[str] = Field(
        default_factory=list, description="Component names of the project, e.g. `[api]`."
    )
    custom_fields: dict[str, Any] = Field(
        default_factory=dict,
        description="Custom fields by display name, e.g. `{Severity: Sev1}` (ids also work).",
    )


class CommentArgs(BaseModel):
    """Arguments of `jira.comment`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(pattern=ISSUE_KEY, description=ISSUE_HELP)
    body: WikiText = Field(min_length=1, description="Text of the comment.")
    timeline: bool = Field(
        default=False, description="Append the incident's timeline so far (steps and gates)."
    )


class TransitionArgs(BaseModel):
    """Arguments of `jira.transition`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(pattern=ISSUE_KEY, description=ISSUE_HELP)
    status: str = Field(
        min_length=1, description="Status to move the ticket to, e.g. `In Progress`, `Done`."
    )


class AttachArgs(BaseModel):
    """Arguments of `jira.attach`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(pattern=ISSUE_KEY, description=ISSUE_HELP)
    path: str = Field(
        min_length=1,
        description="File to attach; a relative path is inside the incident's evidence folder.",
    )
    filename: str | None = Field(
        default=None,
        pattern=r"^[^/\\]+$",
        description="Name to give the attachment; empty keeps the file's own name.",
    )


class LinkArgs(BaseModel):
    """Arguments of `jira.link`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issue: str = Field(pattern=ISSUE_KEY, description=ISSUE_HELP)
    url: str = Field(pattern=r"^https?://\S+$", description="Address to link to (http or https).")
    title: str = Field(min_length=1, description="Text the ticket shows for the link.")


def create_issue(args: CreateIssueArgs, ctx: ActionContext) -> dict[str, str]:
    """Open a ticket for the incident (once per incident and step); return its key and URL."""
    ticket = ctx.tickets.create_issue(
        NewTicket(
            project=args.project,
            summary=ctx.redact(args.summary),
            description=ctx.redact(args.description or ctx.brief),
            issue_type=args.issue_type,
            priority=args.priority or PRIORITY_BY_SEVERITY.get(ctx.severity),
            labels=tuple(args.labels),
            components=tuple(args.components),
            custom_fields={
                name: ctx.redact(value) if isinstance(value, str) else value
                for name, value in args.custom_fields.items()
            },
            incident=ctx.incident,
        ),
        ctx.dedupe_key,
    )
    return {"key": ticket.key, "url": ticket.url}


def comment(args: CommentArgs, ctx: ActionContext) -> dict[str, str]:
    """Comment on a ticket (once per incident and step); return the comment's id."""
    body = args.body
    if args.timeline:
        body = f"{body}\n\nTimeline (UTC):\n{ctx.timeline() or '(nothing yet)'}"
    with _known_issue():
        comment_id = ctx.tickets.comment(args.issue, ctx.redact(body), ctx.dedupe_key)
    return {"id": comment_id}


def transition(args: TransitionArgs, ctx: ActionContext) -> dict[str, str]:
    """Move a ticket to a status (a no-op when it is there already); return key and status."""
    with _known_issue():
        ticket = ctx.tickets.transition(args.issue, args.status)
    return {"key": ticket.key, "status": ticket.status}


def attach(args: AttachArgs, ctx: ActionContext) -> dict[str, str]:
    """Attach a file (once per incident and step); return the attachment's id and name."""
    path = Path(args.path)
    if not path.is_absolute():
        path = (ctx.evidence_dir or ctx.home) / path
    if not path.is_file():
        raise StepFailed(f"no file to attach at {path}")
    filename = args.filename or path.name
    with _known_issue():
        attachment_id = ctx.tickets.attach(args.issue, path, ctx.dedupe_key, filename=filename)
    return {"id": attachment_id, "filename": filename}


def link(args: LinkArgs, ctx: ActionContext) -> dict[str, str]:
    """Link a ticket to a web page (once per incident and step); return the link's id."""
    with _known_issue():
        link_id = ctx.tickets.link(args.issue, args.url, ctx.redact(args.title), ctx.dedupe_key)
    return {"id": link_id}


@contextmanager
def _known_issue() -> Iterator[None]:
    """Turn an unknown ticket key into a step failure that points at the `issue` argument."""
    try:
        yield
    except TicketNotFound as err:
        raise StepFailed(f"{err}: check the `issue` key") from err


ACTIONS = (
    Action(
        name="jira.create_issue",
        args=CreateIssueArgs,
        run=create_issue,
        outputs=("key", "url"),
        description="Open a ticket; re-running the step returns the same ticket.",
        reach=Reach.PORTS,
    ),
    Action(
        name="jira.comment",
        args=CommentArgs,
        run=comment,
        outputs=("id",),
        description="Add a comment to a ticket; re-running the step adds it once.",
        reach=Reach.PORTS,
    ),
    Action(
        name="jira.transition",
        args=TransitionArgs,
        run=transition,
        outputs=("key", "status"),
        description="Move a ticket to another status; moving it where it is does nothing.",
        reach=Reach.PORTS,
    ),
    Action(
        name="jira.attach",
        args=AttachArgs,
        run=attach,
        outputs=("id", "filename"),
        description="Attach a file (e.g. collected evidence) to a ticket; once per step.",
        reach=Reach.PORTS,
    ),
    Action(
        name="jira.link",
        args=LinkArgs,
        run=link,
        outputs=("id",),
        description="Add a web link (dashboard, channel, runbook) to a ticket; once per step.",
        reach=Reach.PORTS,
    ),
)

"""The `slack.*` actions: open channels in, post to and edit messages of the run's chat system.

They act through `ctx.chat`, so the same step reaches Slack, the local outbox or a drill sandbox.
People read chat: every string sent passes through `ctx.redact` first. Message text and blocks
are mrkdwn: a value a template puts in them is escaped (`SlackText`), so an alert label cannot
mention `@channel` or hide a link; the template's own text stays markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flows.contract.actions import Action, ActionContext, Reach
from flows.runbook.templates import Escaped
from integrations.slack import ChatError
from integrations.slack.mrkdwn import escape

CHANNEL_NAME = re.compile(r"[a-z0-9_-]+")
"""Slack's rule for channel names: lowercase letters, digits, `-` and `_` (a name over Slack's
80 characters is shortened by the backend)."""
TS = r"^[0-9]+\.[0-9]+$"

Invitee = Annotated[str, Field(pattern=r"^(@[A-Za-z0-9._-]+|[UW][A-Z0-9]+|[^@\s]+@[^@\s]+)$")]
SlackText = Annotated[str, Escaped(escape)]
"""Message text: mrkdwn, in which the values templates interpolate are escaped."""
Blocks = Annotated[
    list[dict[str, Any]] | None,
    Field(default=None, max_length=50, description="Block Kit blocks (at most 50)."),
    Escaped(escape),
]


class PostArgs(BaseModel):
    """Arguments of `slack.post`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str | None = Field(
        default=None,
        min_length=1,
        description="Where to post: `#name`, `name` or a channel id; left out: the channel"
        " `slack.create_channel` opened for this incident.",
    )
    text: SlackText = Field(
        min_length=1,
        description="Message text; with `blocks` it is the notification fallback. Past Slack's"
        " 40,000 characters it is cut to end in `… [truncated]`.",
    )
    blocks: Blocks
    thread_ts: str | None = Field(
        default=None,
        pattern=TS,
        description="Reply in this message's thread, e.g. `{{ steps.notify.outputs.ts }}`.",
    )


class UpdateArgs(BaseModel):
    """Arguments of `slack.update`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(
        min_length=1,
        description="Channel of the message, e.g. `{{ steps.status.outputs.channel }}`.",
    )
    ts: str = Field(
        pattern=TS, description="The message to edit, e.g. `{{ steps.status.outputs.ts }}`."
    )
    text: SlackText = Field(
        min_length=1,
        description="New message text; with `blocks` it is the notification fallback. Past"
        " Slack's 40,000 characters it is cut to end in `… [truncated]`.",
    )
    blocks: Blocks


class CreateChannelArgs(BaseModel):
    """Arguments of `slack.create_channel`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Channel name without `#`: lowercase letters, digits, `-`, `_`. Past Slack's"
        " 80 characters it becomes its first 71, `-` and 8 hex digits of its sha256."
    )
    topic: str = Field(
        default="",
        description="Channel topic; past Slack's 250 characters it is cut to end in"
        " `… [truncated]`.",
    )
    invite: list[Invitee] = Field(
        default_factory=list,
        description="Who to invite: user ids (`U0123ABCD`), `@handles`, `@user-group` handles"
        " or email addresses.",
    )
    bookmark_title: str | None = Field(
        default=None, min_length=1, description="Title of a link bookmarked in the channel."
    )
    bookmark_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="URL of that bookmark, e.g. the ticket: `{{ steps.ticket.outputs.url }}`.",
    )

    @field_validator("name")
    @classmethod
    def _slack_channel_name(cls, name: str) -> str:
        if CHANNEL_NAME.fullmatch(name):
            return name
        hint = " and no leading '#'" if name.startswith("#") else ""
        raise ValueError(
            f"{name!r} is not a Slack channel name: use lowercase letters, digits, '-' and"
            f" '_'{hint}"
        )

    @model_validator(mode="after")
    def _bookmark_is_whole(self) -> Self:
        if (self.bookmark_title is None) != (self.bookmark_url is None):
            raise ValueError("give both `bookmark_title` and `bookmark_url`, or neither")
        return self


def post(args: PostArgs, ctx: ActionContext) -> dict[str, str]:
    """Post a message (once per incident and step); return its channel and ts."""
    channel = args.channel or ctx.chat.incident_channel(ctx.incident)
    if channel is None:
        raise ChatError(
            f"no `channel` given and incident {ctx.incident} has no channel yet: set `channel`"
            " or open one with slack.create_channel in an earlier step"
        )
    message = ctx.chat.post(
        channel,
        ctx.redact(args.text),
        ctx.dedupe_key,
        blocks=_redacted(args.blocks, ctx.redact),
        thread_ts=args.thread_ts,
    )
    return {"channel": message.channel, "ts": message.ts}


def update(args: UpdateArgs, ctx: ActionContext) -> dict[str, str]:
    """Edit a message posted earlier (a status line kept current); return its channel and ts."""
    message = ctx.chat.update(
        args.channel, args.ts, ctx.redact(args.text), blocks=_redacted(args.blocks, ctx.redact)
    )
    return {"channel": message.channel, "ts": message.ts}


def create_channel(args: CreateChannelArgs, ctx: ActionContext) -> dict[str, str]:
    """Create a channel (once per incident and step), set it up; return its id."""
    bookmark = None
    if args.bookmark_title is not None and args.bookmark_url is not None:
        bookmark = (ctx.redact(args.bookmark_title), args.bookmark_url)
    channel = ctx.chat.create_channel(
        args.name,
        ctx.dedupe_key,
        topic=ctx.redact(args.topic),
        invite=tuple(args.invite),
        bookmark=bookmark,
    )
    return {"channel": channel}


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` with `redact` applied to every string inside it (Block Kit nests text deeply)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item, redact) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    return value


ACTIONS = (
    Action(
        name="slack.post",
        args=PostArgs,
        run=post,
        outputs=("channel", "ts"),
        description="Post a message; re-running the step does not post it again.",
        reach=Reach.PORTS,
    ),
    Action(
        name="slack.update",
        args=UpdateArgs,
        run=update,
        outputs=("channel", "ts"),
        description="Edit a message posted earlier, e.g. a status line, instead of posting again.",
        reach=Reach.PORTS,
    ),
    Action(
        name="slack.create_channel",
        args=CreateChannelArgs,
        run=create_channel,
        outputs=("channel",),
        description="Create an incident channel with topic, people and a bookmark; re-running"
        " the step returns the same channel.",
        reach=Reach.PORTS,
    ),
)

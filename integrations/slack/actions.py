"""The `slack.*` actions: post to and open channels in the run's chat system.

They act through `ctx.chat`, so the same step reaches Slack, the local outbox or a drill sandbox.
People read chat: every string sent passes through `ctx.redact` first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flows.actions import Action, ActionContext

CHANNEL_NAME = re.compile(r"[a-z0-9_-]{1,80}")
"""Slack's rule for channel names: lowercase letters, digits, `-` and `_`, at most 80."""


class PostArgs(BaseModel):
    """Arguments of `slack.post`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(
        min_length=1, description="Where to post: `#name`, `name` or a channel id."
    )
    text: str = Field(
        min_length=1,
        max_length=40_000,
        description="Message text; with `blocks` it is the notification fallback.",
    )
    blocks: list[dict[str, Any]] | None = Field(
        default=None, max_length=50, description="Block Kit blocks (at most 50)."
    )
    thread_ts: str | None = Field(
        default=None,
        pattern=r"^[0-9]+\.[0-9]+$",
        description="Reply in this message's thread, e.g. `{{ steps.notify.outputs.ts }}`.",
    )


class CreateChannelArgs(BaseModel):
    """Arguments of `slack.create_channel`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        description="Channel name without `#`: lowercase letters, digits, `-`, `_`; at most 80."
    )
    topic: str = Field(default="", max_length=250, description="Channel topic (250 characters).")
    invite: list[str] = Field(default_factory=list, description="User ids to invite.")

    @field_validator("name")
    @classmethod
    def _slack_channel_name(cls, name: str) -> str:
        if CHANNEL_NAME.fullmatch(name):
            return name
        hint = " and no leading '#'" if name.startswith("#") else ""
        raise ValueError(
            f"{name!r} is not a Slack channel name: use lowercase letters, digits, '-' and '_',"
            f" at most 80 characters{hint}"
        )


def post(args: PostArgs, ctx: ActionContext) -> dict[str, str]:
    """Post a message (once per incident and step); return its channel and ts."""
    blocks = None if args.blocks is None else [_redacted(b, ctx.redact) for b in args.blocks]
    message = ctx.chat.post(
        args.channel, ctx.redact(args.text), ctx.dedupe_key, blocks=blocks, thread_ts=args.thread_ts
    )
    return {"channel": message.channel, "ts": message.ts}


def create_channel(args: CreateChannelArgs, ctx: ActionContext) -> dict[str, str]:
    """Create a channel (once per incident and step); return its id."""
    channel = ctx.chat.create_channel(
        args.name, ctx.dedupe_key, topic=ctx.redact(args.topic), invite=tuple(args.invite)
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
    ),
    Action(
        name="slack.create_channel",
        args=CreateChannelArgs,
        run=create_channel,
        outputs=("channel",),
        description="Create an incident channel; re-running the step returns the same channel.",
    ),
)

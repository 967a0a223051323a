"""Posting once per step: a post carries its dedupe key in message metadata and is looked for first.

The channel's (or thread's) latest messages are searched for the key before posting and again
when a post goes unconfirmed, so a crash between the post and the map write, or an answer lost on
the way back, never posts a second message.

Text longer than Slack takes (40,000 characters in a message, 3,000 in a text object of the
blocks) is cut to fit, ending in a marker, rather than refused.
"""

from __future__ import annotations

from http.client import HTTPException
from typing import Any

from slack_sdk.errors import SlackApiError

from flows.contract.ports import ChatMessage
from integrations.limits import fit
from integrations.slack import ChatError
from integrations.slack.client import SlackClient
from integrations.slack.refusals import describe, error_code

EVENT_TYPE = "runbook_step"
"""The message metadata event type whose payload carries a post's dedupe key."""
LOOKBACK = 100
"""Latest messages (of a channel or a thread) searched for an earlier post before posting."""
TEXT_LIMIT = 40_000
"""Characters Slack takes in a message's text."""
BLOCK_TEXT_LIMIT = 3_000
"""Characters Slack takes in one text object of the blocks (a section's text)."""


def post_once(
    slack: SlackClient,
    channel_id: str,
    where: str,
    text: str,
    dedupe_key: str,
    blocks: list[dict[str, Any]] | None,
    thread_ts: str | None,
) -> ChatMessage:
    """Send chat.postMessage once; when its outcome is unknown, ask Slack what happened."""
    text, blocks = fitted(text, blocks)
    try:
        answer = slack.api.chat_postMessage(
            channel=channel_id,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata={"event_type": EVENT_TYPE, "event_payload": {"dedupe": dedupe_key}},
        )
        return ChatMessage(channel=answer["channel"], ts=answer["ts"])
    except SlackApiError as err:
        if err.response.status_code < 500:
            raise slack.refusal(err, where) from err
        unknown: Exception = err
    except (OSError, HTTPException) as err:
        unknown = err
    # The post may have landed before the failure: look instead of posting again.
    found = find_post(slack, channel_id, where, dedupe_key, thread_ts)
    if found is not None:
        return found
    raise ChatError(
        f"Slack did not confirm the post to {where} ({describe(unknown)}) and it is not in"
        " the channel yet: re-run the step; it looks again before posting"
    ) from unknown


def fitted(
    text: str, blocks: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]] | None]:
    """The text and blocks of a message, each value cut to what Slack takes."""
    return fit(text, TEXT_LIMIT), None if blocks is None else _fit_text_objects(blocks)


def _fit_text_objects(value: Any) -> Any:
    """`value` with the text of every text object inside it (mrkdwn, plain_text) cut to fit."""
    if isinstance(value, list):
        return [_fit_text_objects(item) for item in value]
    if not isinstance(value, dict):
        return value
    cut = {key: _fit_text_objects(item) for key, item in value.items()}
    if cut.get("type") in ("mrkdwn", "plain_text") and isinstance(cut.get("text"), str):
        cut["text"] = fit(cut["text"], BLOCK_TEXT_LIMIT)
    return cut


def find_post(
    slack: SlackClient, channel_id: str, where: str, dedupe_key: str, thread_ts: str | None
) -> ChatMessage | None:
    """The message posted under `dedupe_key` among the latest of the channel or thread."""
    for message in _recent(slack, channel_id, where, thread_ts):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == EVENT_TYPE and payload.get("dedupe") == dedupe_key:
            return ChatMessage(channel=channel_id, ts=message["ts"])
    return None


def _recent(
    slack: SlackClient, channel_id: str, where: str, thread_ts: str | None
) -> list[dict[str, Any]]:
    """The latest messages of the channel, or of the thread under `thread_ts`, with metadata."""

    def read() -> list[dict[str, Any]]:
        if thread_ts is None:
            answer = slack.api.conversations_history(
                channel=channel_id, include_all_metadata=True, limit=LOOKBACK
            )
        else:
            # Replies come oldest first: a thread longer than LOOKBACK is searched in part.
            answer = slack.api.conversations_replies(
                channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=LOOKBACK
            )
        return list(answer["messages"])

    with slack.failures(where):
        try:
            return read()
        except SlackApiError as err:
            if error_code(err) != "not_in_channel":
                raise
            # chat:write.public posts without membership but history needs it: join the
            # public channel, or say how to invite the app when joining is not allowed.
            try:
                slack.api.conversations_join(channel=channel_id)
            except SlackApiError:
                raise err from None
        return read()

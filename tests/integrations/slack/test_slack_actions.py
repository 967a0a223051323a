"""The slack.* actions run through an ActionContext, against the local outbox and Slack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from flows.contract.actions import ActionContext
from flows.errors import StepFailed
from flows.runbook.templates import escapes_of
from integrations.slack import mrkdwn
from integrations.slack.actions import CreateChannelArgs, PostArgs, UpdateArgs
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack

MakeContext = Callable[..., ActionContext]
RunAction = Callable[..., dict[str, Any]]
Lines = Callable[[], list[dict[str, Any]]]
Connect = Callable[..., SlackChat]


def test_post_returns_channel_and_ts(run_action: RunAction, outbox_lines: Lines) -> None:
    """slack.post returns where the message landed and its ts."""
    outputs = run_action("slack.post", {"channel": "#sec-oncall", "text": "Leak on api"})
    assert outputs == {"channel": "#sec-oncall", "ts": outbox_lines()[0]["ts"]}


def test_post_uses_the_step_dedupe_key(run_action: RunAction, outbox_lines: Lines) -> None:
    """The message is written under the step's incident:step key."""
    run_action("slack.post", {"channel": "#ops", "text": "hi"})
    assert outbox_lines()[0]["dedupe_key"] == "inc-1:step-1"


def test_post_twice_in_one_step_posts_once(run_action: RunAction, outbox_lines: Lines) -> None:
    """Re-running the same step returns the message already posted."""
    first = run_action("slack.post", {"channel": "#ops", "text": "hi"})
    second = run_action("slack.post", {"channel": "#ops", "text": "hi"})
    assert first == second
    assert len(outbox_lines()) == 1


def test_post_in_a_thread(
    run_action: RunAction, make_context: MakeContext, outbox_lines: Lines
) -> None:
    """A reply carries the ts of the message it threads under."""
    parent = run_action("slack.post", {"channel": "#ops", "text": "incident"})
    with_ = {"channel": "#ops", "text": "update", "thread_ts": parent["ts"]}
    run_action("slack.post", with_, make_context(step="reply"))
    assert outbox_lines()[1]["thread_ts"] == parent["ts"]


def test_post_redacts_text_and_blocks(
    run_action: RunAction, make_context: MakeContext, outbox_lines: Lines
) -> None:
    """Text and every string in blocks pass through the context's redaction."""
    context = make_context(redact=lambda text: text.replace("hunter2", "***"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "pw hunter2"}}]
    run_action("slack.post", {"channel": "#ops", "text": "hunter2", "blocks": blocks}, context)
    [line] = outbox_lines()
    assert (line["text"], line["blocks"][0]["text"]["text"]) == ("***", "pw ***")


def test_create_channel_returns_its_id(run_action: RunAction, outbox_lines: Lines) -> None:
    """slack.create_channel returns the new channel's id and writes one line."""
    outputs = run_action("slack.create_channel", {"name": "inc-api", "topic": "Leak"})
    assert outputs == {"channel": "C-LOCAL-inc-api"}
    assert [line["topic"] for line in outbox_lines()] == ["Leak"]


def test_create_channel_twice_in_one_step_creates_once(
    run_action: RunAction, outbox_lines: Lines
) -> None:
    """Re-running the same step returns the channel already created."""
    run_action("slack.create_channel", {"name": "inc-api"})
    run_action("slack.create_channel", {"name": "inc-api"})
    assert len(outbox_lines()) == 1


@pytest.mark.parametrize("name", ["Inc-API", "inc api", "inc.api", ""])
def test_invalid_channel_name_is_rejected(name: str) -> None:
    """Names outside Slack's rule are rejected with the rule in the message."""
    with pytest.raises(ValidationError, match="lowercase letters, digits"):
        CreateChannelArgs(name=name)


def test_leading_hash_gets_its_own_hint() -> None:
    """A name written as `#name` is rejected with a hint to drop the `#`."""
    with pytest.raises(ValidationError, match="no leading '#'"):
        CreateChannelArgs(name="#inc-api")


def test_longest_channel_name_is_accepted() -> None:
    """An 80-character name of allowed characters is valid."""
    assert CreateChannelArgs(name="a" * 80).name == "a" * 80


def test_post_without_channel_goes_to_the_incident_channel(
    run_action: RunAction, make_context: MakeContext, outbox_lines: Lines
) -> None:
    """With no `channel`, slack.post posts where slack.create_channel opened the incident's."""
    run_action("slack.create_channel", {"name": "inc-api"}, make_context(step="room"))
    outputs = run_action("slack.post", {"text": "Leak on api"}, make_context(step="notify"))
    assert outputs["channel"] == "C-LOCAL-inc-api"
    assert outbox_lines()[1]["channel"] == "C-LOCAL-inc-api"


def test_post_without_any_channel_fails_with_a_hint(run_action: RunAction) -> None:
    """With no `channel` and no incident channel yet, slack.post says how to give one."""
    with pytest.raises(StepFailed, match="incident inc-1 has no channel yet: set `channel`"):
        run_action("slack.post", {"text": "Leak on api"})


def test_update_edits_the_posted_message(
    run_action: RunAction, make_context: MakeContext, outbox_lines: Lines
) -> None:
    """slack.update edits the message a previous step posted and returns the same place."""
    status = run_action("slack.post", {"channel": "#ops", "text": "investigating"})
    with_ = {**status, "text": "contained"}
    assert run_action("slack.update", with_, make_context(step="status-2")) == status
    assert [line["kind"] for line in outbox_lines()] == ["message", "update"]


def test_update_redacts_text_and_blocks(
    run_action: RunAction, make_context: MakeContext, outbox_lines: Lines
) -> None:
    """The new text and every string in new blocks pass through the context's redaction."""
    status = run_action("slack.post", {"channel": "#ops", "text": "investigating"})
    context = make_context(step="status-2", redact=lambda text: text.replace("hunter2", "***"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "pw hunter2"}}]
    run_action("slack.update", {**status, "text": "hunter2", "blocks": blocks}, context)
    line = outbox_lines()[1]
    assert (line["text"], line["blocks"][0]["text"]["text"]) == ("***", "pw ***")


def test_create_channel_passes_bookmark_and_invitees(
    run_action: RunAction, outbox_lines: Lines
) -> None:
    """Bookmark title and URL and the invite list reach the chat system."""
    with_ = {
        "name": "inc-api",
        "invite": ["@sec-oncall", "U0123ABCD", "alice@example.com"],
        "bookmark_title": "Ticket",
        "bookmark_url": "https://jira.test/browse/SEC-1",
    }
    run_action("slack.create_channel", with_)
    [line] = outbox_lines()
    assert line["invite"] == with_["invite"]
    assert line["bookmark"] == ["Ticket", "https://jira.test/browse/SEC-1"]


def test_bookmark_needs_title_and_url() -> None:
    """A bookmark title without a URL (or the reverse) is rejected."""
    with pytest.raises(ValidationError, match="both `bookmark_title` and `bookmark_url`"):
        CreateChannelArgs(name="inc-api", bookmark_title="Ticket")


@pytest.mark.parametrize("who", ["alice", "#sec", "@", "u0123abcd"])
def test_invitee_must_be_id_handle_or_email(who: str) -> None:
    """An invitee that is not a user id, `@handle` or email address is rejected."""
    with pytest.raises(ValidationError, match="invite"):
        CreateChannelArgs(name="inc-api", invite=[who])


def test_actions_reach_slack_through_the_real_client(
    slack_server: FakeSlack, connect: Connect, make_context: MakeContext, run_action: RunAction
) -> None:
    """Channel, default-channel post and edit run end to end against the Slack Web API."""
    chat = connect()
    room = run_action(
        "slack.create_channel",
        {"name": "inc-api", "topic": "Leak"},
        replace(make_context(step="room"), chat=chat),
    )
    status = run_action(
        "slack.post", {"text": "investigating"}, replace(make_context(step="status"), chat=chat)
    )
    run_action(
        "slack.update",
        {**status, "text": "contained"},
        replace(make_context(step="status-2"), chat=chat),
    )
    assert status["channel"] == room["channel"]
    assert [m["text"] for m in slack_server.messages[room["channel"]]] == ["contained"]


@pytest.mark.parametrize("args", [PostArgs, UpdateArgs])
def test_message_text_and_blocks_are_markup(args: type[PostArgs | UpdateArgs]) -> None:
    """A message's text and blocks are mrkdwn, so templates escape the values put in them;
    the channel is not."""
    assert escapes_of(args) == {"text": mrkdwn.escape, "blocks": mrkdwn.escape}


def test_mrkdwn_escape_makes_mentions_and_links_text() -> None:
    """`&`, `<`, `>` are escaped as Slack asks; nothing else changes."""
    assert mrkdwn.escape("<!channel> <https://x|y> & *b*") == (
        "&lt;!channel&gt; &lt;https://x|y&gt; &amp; *b*"
    )

"""The slack.* actions run against the local outbox through an ActionContext."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from flows.actions import ActionContext
from integrations.slack.actions import CreateChannelArgs

MakeContext = Callable[..., ActionContext]
RunAction = Callable[..., dict[str, Any]]
Lines = Callable[[], list[dict[str, Any]]]


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


@pytest.mark.parametrize("name", ["Inc-API", "inc api", "inc.api", "x" * 81, ""])
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

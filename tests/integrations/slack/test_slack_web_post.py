"""SlackChat posts and edits through the real WebClient: once per dedupe key, whatever fails."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from integrations.slack import ChatError
from integrations.slack.web import SlackChat
from tests.fakes.slack_server import FakeSlack

Connect = Callable[..., SlackChat]


def test_post_carries_its_dedupe_key_as_metadata(slack_server: FakeSlack, connect: Connect) -> None:
    """A post sends message metadata naming the step's dedupe key."""
    ops = slack_server.add_channel("ops")
    message = connect().post(ops, "Leak on api", "inc-1:notify")
    [call] = slack_server.calls("chat.postMessage")
    assert call.body["metadata"] == {
        "event_type": "runbook_step",
        "event_payload": {"dedupe": "inc-1:notify"},
    }
    assert (message.channel, message.ts) == (ops, slack_server.messages[ops][0]["ts"])


def test_post_twice_with_one_key_posts_once(slack_server: FakeSlack, connect: Connect) -> None:
    """The second post under a key is answered from the map without calling Slack."""
    ops = slack_server.add_channel("ops")
    chat = connect()
    first = chat.post(ops, "hello", "inc-1:notify")
    calls = len(slack_server.requests)
    assert chat.post(ops, "hello", "inc-1:notify") == first
    assert len(slack_server.requests) == calls
    assert slack_server.count("chat.postMessage") == 1


def test_empty_map_finds_the_post_in_history(slack_server: FakeSlack, connect: Connect) -> None:
    """With the map lost, the earlier post is found by its metadata instead of posted again."""
    ops = slack_server.add_channel("ops")
    first = connect().post(ops, "hello", "inc-1:notify")
    again = connect(map_name="empty.db").post(ops, "hello", "inc-1:notify")
    assert again == first
    assert slack_server.count("chat.postMessage") == 1
    assert slack_server.calls("conversations.history")[-1].body["include_all_metadata"] == "1"


def test_rate_limited_post_waits_out_retry_after(slack_server: FakeSlack, connect: Connect) -> None:
    """A 429 with Retry-After: 2 is waited out and the message is posted once."""
    ops = slack_server.add_channel("ops")
    slack_server.fail_next("chat.postMessage", status=429, retry_after=2)
    start = time.monotonic()
    connect().post(ops, "hello", "inc-1:notify")
    assert time.monotonic() - start >= 2
    assert slack_server.count("chat.postMessage") == 2
    assert len(slack_server.messages[ops]) == 1


def test_rate_limit_past_the_retries_fails_the_step(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """When Slack keeps answering 429 beyond the configured retries, the step fails."""
    ops = slack_server.add_channel("ops")
    slack_server.fail_next("chat.postMessage", status=429, retry_after=0, times=2)
    with pytest.raises(ChatError, match="rate limited after 1 waits"):
        connect(max_rate_limit_retries=1).post(ops, "hello", "inc-1:notify")
    assert slack_server.messages[ops] == []


def test_dropped_post_answer_is_looked_up_not_resent(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A post applied but unanswered is found in history, and a re-run finds it too."""
    ops = slack_server.add_channel("ops")
    slack_server.drop_response_after("chat.postMessage")
    first = connect().post(ops, "hello", "inc-1:notify")
    again = connect(map_name="empty.db").post(ops, "hello", "inc-1:notify")
    assert again == first
    assert slack_server.count("chat.postMessage") == 1
    assert len(slack_server.messages[ops]) == 1


def test_server_error_on_post_is_not_retried(slack_server: FakeSlack, connect: Connect) -> None:
    """A 500 on chat.postMessage fails the step after a history check, without a second post."""
    ops = slack_server.add_channel("ops")
    slack_server.fail_next("chat.postMessage", status=500)
    with pytest.raises(ChatError, match=r"did not confirm the post to C\w+ \(HTTP 500\)"):
        connect().post(ops, "hello", "inc-1:notify")
    assert slack_server.count("chat.postMessage") == 1
    assert slack_server.count("conversations.history") == 2


def test_step_retry_after_server_error_posts_once(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """Re-running the step after an unconfirmed post leaves exactly one message."""
    ops = slack_server.add_channel("ops")
    slack_server.fail_next("chat.postMessage", status=503)
    chat = connect()
    with pytest.raises(ChatError):
        chat.post(ops, "hello", "inc-1:notify")
    chat.post(ops, "hello", "inc-1:notify")
    assert len(slack_server.messages[ops]) == 1


def test_reply_is_looked_up_in_its_thread(slack_server: FakeSlack, connect: Connect) -> None:
    """A threaded post is searched for among the thread's replies, and not posted twice."""
    ops = slack_server.add_channel("ops")
    parent = connect().post(ops, "incident", "inc-1:open")
    reply = connect().post(ops, "update", "inc-1:reply", thread_ts=parent.ts)
    assert connect(map_name="empty.db").post(ops, "update", "inc-1:reply", thread_ts=parent.ts) == (
        reply
    )
    assert slack_server.count("conversations.replies") == 2
    assert [m.get("thread_ts") for m in slack_server.messages[ops]] == [None, parent.ts]


def test_channel_name_is_resolved_across_pages_once(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """`#name` is found by paging conversations.list, then remembered."""
    for number in range(250):
        slack_server.add_channel(f"team-{number:03d}")
    ops = slack_server.add_channel("ops")
    chat = connect()
    assert chat.post("#ops", "one", "inc-1:a").channel == ops
    chat.post("ops", "two", "inc-1:b")
    assert slack_server.count("conversations.list") == 2
    assert slack_server.calls("conversations.list")[1].body["cursor"]


def test_public_channel_is_joined_to_read_its_history(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """Posting to a public channel the app is not in joins it, so the history check can run."""
    ops = slack_server.add_channel("ops", member=False)
    connect().post(ops, "hello", "inc-1:notify")
    assert slack_server.count("conversations.join") == 1
    assert slack_server.bot in slack_server.channels[ops].members
    assert len(slack_server.messages[ops]) == 1


def test_dropped_read_is_retried(slack_server: FakeSlack, connect: Connect) -> None:
    """A connection lost on conversations.history is retried by the client."""
    ops = slack_server.add_channel("ops")
    slack_server.drop_response_after("conversations.history")
    connect().post(ops, "hello", "inc-1:notify")
    assert slack_server.count("conversations.history") == 2
    assert slack_server.count("chat.postMessage") == 1


def test_update_edits_the_message_in_place(slack_server: FakeSlack, connect: Connect) -> None:
    """chat.update replaces the text of the same message; nothing new is posted."""
    ops = slack_server.add_channel("ops")
    chat = connect()
    status = chat.post(ops, "Status: investigating", "inc-1:status")
    assert chat.update(ops, status.ts, "Status: contained") == status
    [message] = slack_server.messages[ops]
    assert (message["text"], slack_server.count("chat.update")) == ("Status: contained", 1)


def test_update_of_unknown_message_says_to_check_ts(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """Editing a ts Slack does not know fails with a hint about `ts`."""
    slack_server.add_channel("ops")
    with pytest.raises(ChatError, match="no such message in #ops: check `ts`"):
        connect().update("#ops", "1.000009", "x")
    assert slack_server.count("chat.update") == 1


def test_timed_out_post_applied_late_is_found_by_the_rerun(
    slack_server: FakeSlack, connect: Connect
) -> None:
    """A post that lands after the client gave up is found by the step's re-run, not repeated."""
    ops = slack_server.add_channel("ops")
    slack_server.delay("chat.postMessage", 0.6)
    chat = connect(timeout_s=0.2)
    with pytest.raises(ChatError, match="did not confirm the post"):
        chat.post(ops, "hello", "inc-1:notify")
    deadline = time.monotonic() + 5
    while not slack_server.messages[ops] and time.monotonic() < deadline:
        time.sleep(0.05)
    message = chat.post(ops, "hello", "inc-1:notify")
    assert message.ts == slack_server.messages[ops][0]["ts"]
    assert slack_server.count("chat.postMessage") == 1

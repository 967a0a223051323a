"""The local outbox: one fsynced JSON line per message or channel, idempotent across instances."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from integrations.slack import ChatError
from integrations.slack.local import LocalOutbox


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.jsonl"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_post_appends_one_message_line(path: Path) -> None:
    """A post writes one `message` line with everything needed to find it again."""
    message = LocalOutbox(path, echo=None).post("#sec-oncall", "Leak on api", "inc-1:notify")
    assert lines(path) == [
        {
            "kind": "message",
            "ts": message.ts,
            "channel": "#sec-oncall",
            "text": "Leak on api",
            "blocks": None,
            "thread_ts": None,
            "dedupe_key": "inc-1:notify",
        }
    ]


def test_post_echoes_a_readable_line(path: Path) -> None:
    """A new message is shown on the console as `[chat #channel] text`."""
    echoed: list[str] = []
    LocalOutbox(path, echo=echoed.append).post("sec-oncall", "Leak on api", "k")
    assert echoed == ["[chat #sec-oncall] Leak on api"]


def test_reply_echo_names_the_thread(path: Path) -> None:
    """A threaded reply's console line names the thread it belongs to."""
    echoed: list[str] = []
    LocalOutbox(path, echo=echoed.append).post("#ops", "update", "k", thread_ts="1.000001")
    assert echoed == ["[chat #ops thread 1.000001] update"]


def test_post_twice_with_one_key_writes_once(path: Path) -> None:
    """Posting again under the same dedupe key returns the first message and writes nothing."""
    echoed: list[str] = []
    outbox = LocalOutbox(path, echo=echoed.append)
    first = outbox.post("#ops", "hello", "inc-1:notify")
    second = outbox.post("#ops", "hello again", "inc-1:notify")
    assert second == first
    assert len(lines(path)) == 1
    assert len(echoed) == 1


def test_two_outboxes_on_one_file_agree(path: Path) -> None:
    """A second instance sees the first one's posts, so a resumed process does not post twice."""
    first = LocalOutbox(path, echo=None).post("#ops", "hello", "inc-1:notify")
    second = LocalOutbox(path, echo=None).post("#ops", "hello", "inc-1:notify")
    assert second == first
    assert len(lines(path)) == 1


def test_instances_keep_agreeing_after_both_wrote(path: Path) -> None:
    """Instances catch up with each other's later writes, not only with the file at start."""
    a, b = LocalOutbox(path, echo=None), LocalOutbox(path, echo=None)
    a.post("#ops", "one", "k1")
    b.post("#ops", "two", "k2")
    assert a.post("#ops", "two", "k2") == b.post("#ops", "two", "k2")
    assert len(lines(path)) == 2


def test_concurrent_posts_with_one_key_write_once(path: Path) -> None:
    """Threads racing through separate instances on one key leave a single line."""
    outboxes = [LocalOutbox(path, echo=None) for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        results = set(pool.map(lambda i: outboxes[i % 4].post("#ops", "x", "k"), range(32)))
    assert len(results) == 1
    assert len(lines(path)) == 1


def test_ts_values_are_unique_and_increasing(path: Path) -> None:
    """Every message gets a Slack-style ts later than the one before, across instances."""
    stamps = [LocalOutbox(path, echo=None).post("#ops", "x", f"k{i}").ts for i in range(20)]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 20


def test_torn_last_line_is_dropped(path: Path) -> None:
    """A half-written last line (a crash mid-write) is cut off before the next append."""
    outbox = LocalOutbox(path, echo=None)
    outbox.post("#ops", "kept", "k1")
    with path.open("ab") as file:
        file.write(b'{"kind": "mess')
    LocalOutbox(path, echo=None).post("#ops", "next", "k2")
    assert [line["text"] for line in lines(path)] == ["kept", "next"]


def test_create_channel_returns_a_stable_local_id(path: Path) -> None:
    """A created channel's id is C-LOCAL-<name>."""
    assert LocalOutbox(path, echo=None).create_channel("inc-api", "k") == "C-LOCAL-inc-api"


def test_create_channel_twice_with_one_key_writes_once(path: Path) -> None:
    """Creating again under the same dedupe key writes no second line."""
    outbox = LocalOutbox(path, echo=None)
    outbox.create_channel("inc-api", "k", topic="Leak")
    outbox.create_channel("inc-api", "k", topic="Leak")
    assert [line["kind"] for line in lines(path)] == ["channel"]


def test_create_taken_name_reuses_the_channel(path: Path) -> None:
    """A channel name already created under another key is reused, as Slack names are unique."""
    echoed: list[str] = []
    outbox = LocalOutbox(path, echo=echoed.append)
    outbox.create_channel("inc-api", "inc-1:channel")
    assert outbox.create_channel("inc-api", "inc-2:channel") == "C-LOCAL-inc-api"
    assert [line["reused"] for line in lines(path)] == [False, True]
    assert echoed == ["[chat] created #inc-api"]


def test_create_channel_records_its_bookmark(path: Path) -> None:
    """The bookmark's title and URL are written with the channel and shown on the console."""
    echoed: list[str] = []
    outbox = LocalOutbox(path, echo=echoed.append)
    outbox.create_channel("inc-api", "k", bookmark=("Ticket", "https://jira.test/SEC-1"))
    assert lines(path)[0]["bookmark"] == ["Ticket", "https://jira.test/SEC-1"]
    assert echoed == ["[chat] created #inc-api [bookmark Ticket: https://jira.test/SEC-1]"]


def test_incident_channel_is_the_latest_created_for_it(path: Path) -> None:
    """An incident's channel is the one its most recent create_channel opened, even reused."""
    outbox = LocalOutbox(path, echo=None)
    outbox.create_channel("inc-api", "inc-1:channel")
    outbox.create_channel("inc-api-war-room", "inc-1:war-room")
    outbox.create_channel("inc-api", "inc-2:channel")
    reader = LocalOutbox(path, echo=None)
    assert reader.incident_channel("inc-1") == "C-LOCAL-inc-api-war-room"
    assert reader.incident_channel("inc-2") == "C-LOCAL-inc-api"
    assert reader.incident_channel("inc") is None


def test_update_appends_an_edit_of_the_message(path: Path) -> None:
    """An edit is an `update` line naming the message's ts, echoed as an edit."""
    echoed: list[str] = []
    outbox = LocalOutbox(path, echo=echoed.append)
    status = outbox.post("#ops", "investigating", "inc-1:status")
    assert outbox.update("#ops", status.ts, "contained") == status
    assert lines(path)[1] == {
        "kind": "update",
        "ts": status.ts,
        "channel": "#ops",
        "text": "contained",
        "blocks": None,
    }
    assert echoed[1] == f"[chat #ops edit {status.ts}] contained"


def test_update_of_an_unknown_ts_fails(path: Path) -> None:
    """Editing a message the outbox never posted fails and writes nothing."""
    with pytest.raises(ChatError, match=r"no message 1\.000001: check `ts`"):
        LocalOutbox(path, echo=None).update("#ops", "1.000001", "x")
    assert path.read_text() == ""


def test_update_does_not_disturb_dedupe(path: Path) -> None:
    """After an edit, posting again under the message's key still returns the message."""
    outbox = LocalOutbox(path, echo=None)
    status = outbox.post("#ops", "investigating", "inc-1:status")
    outbox.update("#ops", status.ts, "contained")
    assert LocalOutbox(path, echo=None).post("#ops", "investigating", "inc-1:status") == status


def test_check_says_where_the_outbox_is(path: Path) -> None:
    """check() names the outbox file."""
    assert LocalOutbox(path, echo=None).check() == f"local outbox at {path}"


def test_create_channel_echoes_name_and_topic(path: Path) -> None:
    """A new channel is announced on the console with its topic and invitees."""
    echoed: list[str] = []
    LocalOutbox(path, echo=echoed.append).create_channel(
        "inc-api", "k", topic="Leak", invite=("U1", "U2")
    )
    assert echoed == ["[chat] created #inc-api: Leak (invited U1, U2)"]


def test_posting_to_a_local_channel_id_echoes_its_name(path: Path) -> None:
    """A post to a created channel's id is shown under the channel's name."""
    echoed: list[str] = []
    LocalOutbox(path, echo=echoed.append).post("C-LOCAL-inc-api", "hi", "k")
    assert echoed == ["[chat #inc-api] hi"]


def test_the_outbox_opens_no_dialog_and_shows_private_replies_on_the_console(path: Path) -> None:
    """A press cannot get a dialog from the outbox (so it is answered without one), and a reply
    meant for one person is echoed, never written where everyone reads."""
    echoed: list[str] = []
    outbox = LocalOutbox(path, echo=echoed.append)
    assert outbox.open_modal("1.2.3", {"type": "modal"}) is False
    outbox.tell("ops", "U0BOB", "not counted")
    assert echoed == ["[chat #ops to U0BOB only] not counted"]
    assert not path.exists() or path.read_text() == ""

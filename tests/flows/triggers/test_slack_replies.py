"""`/runbook` answers responders in their words: the open incidents, one runbook's help, and
errors without file locations, server paths or command-line flags."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flows.triggers.app import build_app
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import command_body, signed, slack_settings
from tests.support import FIXTURES, serve_in_thread, wait_idle


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


@pytest.fixture
def served(home: Path, slack: FakeSlack) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server over the fixture library, Slack configured, workers running."""
    server = make_server(slack_settings(home, slack), load_library(FIXTURES / "library"), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


def ask(client: httpx.Client, text: str) -> dict[str, str]:
    body = command_body(text)
    answer = client.post("/slack/commands", content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.usefixtures("prefect_api")
def test_status_without_an_id_lists_the_open_incidents(
    served: tuple[Server, httpx.Client],
) -> None:
    """`/runbook status` lists each open incident: id, title, standing, start, waiting gates."""
    server, client = served
    assert ask(client, "status")["text"] == "No open incidents."
    incident = ask(client, "disk host=db-1")["text"].split("`")[1]
    wait_idle(server)
    answer = ask(client, "status")
    assert answer["response_type"] == "ephemeral"
    text = answer["text"]
    assert text.startswith("*Open incidents* (1)")
    assert f"`{incident}` *Disk almost full*: waiting, started 20" in text
    assert "waiting at *Free space*" in text


def test_help_with_a_command_gives_that_runbooks_help(
    served: tuple[Server, httpx.Client],
) -> None:
    """`/runbook help disk` answers with that runbook's title, inputs and how to start it."""
    _, client = served
    text = ask(client, "help disk")["text"]
    assert text.startswith("*Disk almost full* (sev3, outage)")
    assert "`host` (string, required): Host whose disk is filling" in text
    assert "*Start it* from #ops: `/runbook disk host=...`" in text
    assert "No runbook `nope` here." in ask(client, "help nope")["text"]


def test_a_missing_input_is_explained_without_location_or_flags(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    """A start without a required input says which, and how to give it in Slack."""
    _, client = served
    text = ask(client, "disk")["text"]
    assert text == "Not started: input 'host' is required (add host=... to the command)"
    assert "--input" not in text and ":0:" not in text and str(FIXTURES) not in text


def test_an_error_from_a_button_shows_no_server_path(
    served: tuple[Server, httpx.Client], home: Path
) -> None:
    """A press for an incident this server does not have is answered without its paths."""
    _, client = served
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob"},
        "channel": {"id": "C0OPS"},
        "container": {"type": "message", "message_ts": "1.2"},
        "response_url": "https://hooks.slack.test/actions/1",
        "trigger_id": "9.9.9",
        "actions": [
            {
                "action_id": "runbook_ack_gate",
                "value": json.dumps({"incident": "gone-1", "gate": "free-space"}),
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    answer = client.post("/slack/interactions", content=body, headers=signed(body))
    assert answer.status_code == 200
    text = answer.json()["text"]
    assert "gone-1" in text and str(home) not in text and "--" not in text

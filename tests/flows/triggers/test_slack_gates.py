"""What runs tell Slack: every gate of a run posted with its button where people are, updated
with who pressed it, and a notice when a run fails, ends early or waits at a gate nobody could
be asked to answer; all through the real slack_sdk client against the loopback fake Slack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.evidence.verify import read_records
from flows.triggers.app import build_app
from flows.triggers.jobs import JobKind
from flows.triggers.server import Server, load_library, make_server
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import (
    click_body,
    command_body,
    gate_button,
    signed,
    slack_settings,
    submit_body,
)
from tests.support import serve_in_thread, wait_idle

THREE_GATES = """---
id: three-checks
title: Three checks <of the host>
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true, description: Host to check}
triggers:
  slack: {command: checks, allowed: ["#ops"]}
---
# Three checks

## Note
```step
id: note
uses: evidence.note
with:
  text: "checking {{ inputs.host }}"
```

## First check
- [ ] One

## Second check
- [ ] Two

## Third check
- [ ] Three
"""

FAILING = """---
id: failing
title: Failing step
kind: outage
severity: sev3
version: 1
owner: "#ops"
inputs:
  host: {type: string, required: true, description: Host}
triggers:
  slack: {command: failing, allowed: ["#ops"]}
---
# Failing step

## Try
```step
id: try_it
uses: shell.run
with:
  argv: ["sh", "-c", "echo '<!channel> disk gone' >&2; exit 3"]
```
"""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("ops")
        yield fake


def library_of(folder: Path, *documents: str) -> Path:
    """A library folder holding these runbook documents."""
    library = folder / "library"
    library.mkdir()
    for n, document in enumerate(documents):
        (library / f"runbook-{n}.md").write_text(document)
    return library


@pytest.fixture
def served(home: Path, slack: FakeSlack, tmp_path: Path) -> Iterator[tuple[Server, httpx.Client]]:
    """The trigger server over the test runbooks, Slack configured, workers running."""
    library = library_of(tmp_path, THREE_GATES, FAILING)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    server.workers.start()
    with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
        yield server, client
    server.workers.stop()


def start(client: httpx.Client, text: str) -> str:
    """Run `/runbook TEXT` from #ops; return the incident it started."""
    body = command_body(text)
    answer = client.post("/slack/commands", content=body, headers=signed(body))
    assert answer.status_code == 200, answer.text
    return answer.json()["text"].split("`")[1]


def gate_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [c.body for c in slack.calls("chat.postMessage") if c.body.get("blocks")]


def section_text(post: dict[str, Any]) -> str:
    blocks = post["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return str(blocks[0]["text"]["text"])


@pytest.mark.usefixtures("prefect_api")
def test_every_gate_reaches_the_owner_channel_with_its_button(
    served: tuple[Server, httpx.Client], slack: FakeSlack, home: Path
) -> None:
    """A runbook without a channel of its own posts its 1st, 2nd and 3rd gate to its owner's
    channel, titled with its title; each press updates its message to say who pressed it."""
    server, client = served
    ops = slack.channel_named("ops")
    assert ops is not None
    incident = start(client, "checks host=db-1")
    wait_idle(server)
    for n, gate in enumerate(["First check", "Second check", "Third check"], start=1):
        posts = gate_posts(slack)
        assert len(posts) == n, f"gate {gate!r} was not posted"
        assert slack.messages[ops.id][-1]["blocks"]  # in #ops
        head = section_text(posts[-1])
        assert head.startswith(f"*Three checks &lt;of the host&gt;*: gate *{gate}* waits")
        ts = slack.messages[ops.id][-1]["ts"]
        click = click_body(gate_button(posts[-1]), ops.id, "ops", ts)
        answer = client.post("/slack/interactions", content=click, headers=signed(click))
        assert answer.status_code == 200
        submit = submit_body(slack)
        answer = client.post("/slack/interactions", content=submit, headers=signed(submit))
        assert answer.status_code == 200
        wait_idle(server)

    records = read_records(home / "incidents" / incident)
    acks = [r.step for r in records if r.event == "gate.acknowledged"]
    assert acks == ["first-check", "second-check", "third-check"]
    finished = [r.data["status"] for r in records if r.event == "run.finished"]
    assert finished == ["waiting", "waiting", "waiting", "succeeded"]
    updated = [call.body for call in slack.calls("chat.update")]
    assert len(updated) == 3
    assert all("Acknowledged by <@U0BOB>" in json.dumps(u["blocks"]) for u in updated)


@pytest.mark.usefixtures("prefect_api")
def test_a_failed_run_tells_the_owner_channel_what_failed_and_what_to_do(
    served: tuple[Server, httpx.Client], slack: FakeSlack
) -> None:
    """A run stopped by a failed step posts the step, its error escaped, and how to continue."""
    server, client = served
    ops = slack.channel_named("ops")
    assert ops is not None
    incident = start(client, "failing host=db-1")
    wait_idle(server)
    [notice] = [m["text"] for m in slack.messages[ops.id]]
    assert f"incident `{incident}` stopped: step `try_it` failed." in notice
    assert "sh exited with code 3" in notice
    assert "&lt;!channel&gt; disk gone" in notice and "<!channel>" not in notice
    assert f"`runbook resume {incident}`" in notice


@pytest.mark.usefixtures("prefect_api")
def test_a_gate_that_cannot_be_posted_is_told_in_plain_text(
    served: tuple[Server, httpx.Client], slack: FakeSlack
) -> None:
    """When Slack refuses the gate message, the run still waits, and a plain notice says which
    gate waits, why it was not posted and how to acknowledge it."""
    server, client = served
    ops = slack.channel_named("ops")
    assert ops is not None
    slack.fail_next("chat.postMessage", status=200, error="invalid_blocks")
    incident = start(client, "checks host=db-1")
    wait_idle(server)
    [notice] = [m["text"] for m in slack.messages[ops.id]]
    assert "waits at a gate nobody could be asked to answer here" in notice
    assert "*First check*: Slack chat.postMessage: Slack rejected the blocks" in notice
    assert f"`runbook ack {incident} first-check`" in notice


def test_a_run_that_ends_early_tells_the_owner_channel(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """A start that cannot run (its document went away after it was queued) posts why, without
    the server's paths, and how to continue."""
    library = library_of(tmp_path, FAILING)
    server = make_server(slack_settings(home, slack), load_library(library), dev=False)
    document = library / "runbook-0.md"
    server.state.intake.enqueue(
        JobKind.START, "failing-20260101-000000-abcd", str(document), {"inputs": {"host": "x"}}
    )
    document.unlink()
    server.workers.start()
    try:
        wait_idle(server)
    finally:
        server.workers.stop()
    ops = slack.channel_named("ops")
    assert ops is not None
    [notice] = [m["text"] for m in slack.messages[ops.id]]
    assert "*Failing step*: the run of incident `failing-20260101-000000-abcd` ended" in notice
    assert str(tmp_path) not in notice
    assert "`runbook resume failing-20260101-000000-abcd`" in notice

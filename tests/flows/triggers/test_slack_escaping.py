"""Text from outside is inert in chat and tickets: an alert label full of Slack markup, run
through the shipped credential-leak runbook, reaches the fake Slack and the fake Jira escaped,
while the runbook's own markup stays live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.engine.runner import start_run
from flows.evidence.verify import read_records
from flows.triggers.app import build_app
from flows.triggers.server import load_library, make_server
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.flows.triggers.test_slack_server import slack_settings
from tests.support import PROJECT, serve_in_thread, wait_idle

TOKEN = "hook-token-9f1e"
HOSTILE = "<!channel> please rotate at <https://evil.example|the console>"


def leak_alert(service: str) -> bytes:
    """An Alertmanager webhook with one LeakedSecretDetected alert for `service`."""
    labels = {"alertname": "LeakedSecretDetected", "service": service, "secret_kind": "api-key"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {},
        "startsAt": "2026-11-26T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "fp-leak-1",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="LeakedSecretDetected"}',
        "status": "firing",
        "receiver": "runbook",
        "groupLabels": {"alertname": "LeakedSecretDetected"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [alert],
    }
    return json.dumps(body).encode()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as fake:
        fake.add_channel("sec-oncall")
        yield fake


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.mark.usefixtures("prefect_api")
def test_an_alert_label_full_of_markup_reaches_slack_and_jira_escaped(
    home: Path, slack: FakeSlack, jira: FakeJira
) -> None:
    """The testers' `service` label pings nobody and links nowhere: Slack gets `&lt;!channel&gt;`,
    Jira gets backslash escapes, and the runbook's own `<#channel>` mention still links."""
    settings = slack_settings(
        home,
        slack,
        webhook_token=SecretStr(TOKEN),
        jira_url=jira.url,
        jira_user="bot@example.com",
        jira_token=SecretStr("api-token"),
    )
    server = make_server(settings, load_library(PROJECT / "runbooks"), dev=False)
    server.workers.start()
    try:
        with serve_in_thread(build_app(server.state)) as url, httpx.Client(base_url=url) as client:
            answer = client.post(
                "/alerts/alertmanager",
                content=leak_alert(HOSTILE),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 202, answer.text
            [incident] = answer.json()["started"]
            wait_idle(server, timeout=120)
    finally:
        server.workers.stop()

    records = read_records(home / "incidents" / incident)
    assert ("gate.waiting", "triage") in [(r.event, r.step) for r in records]
    posts = [call.body["text"] for call in slack.calls("chat.postMessage")]
    escaped = "&lt;!channel&gt; please rotate at &lt;https://evil.example|the console&gt;"
    [announce] = [text for text in posts if "Incident `" in text]
    assert f"for {escaped}*" in announce
    [page] = [text for text in posts if text.startswith("SEV1 credential leak on")]
    assert escaped in page
    channel = slack.channel_named(f"inc-{incident.lower()}")
    assert channel is not None and f"Join <#{channel.id}>" in page  # the runbook's own markup
    assert not any("<!channel>" in text or "<https://evil" in text for text in posts)

    [created] = [
        r.json() for r in jira.requests if r.method == "POST" and r.path.endswith("/issue")
    ]
    description = created["fields"]["description"]
    assert (
        "Service: <\\!channel> please rotate at <https://evil.example\\|the console>" in description
    )
    assert created["fields"]["summary"] == f"Credential leak: api-key for {HOSTILE}"


SECRET_POST = """---
id: secret-post
title: Secret in a message
kind: other
severity: sev4
version: 1
owner: "#sec-oncall"
inputs:
  token: {type: string, required: true, secret: true, description: A token}
  who: {type: string, required: true, description: Who asked}
---
# Secret in a message

## Post
```step
id: post
uses: slack.post
with:
  channel: "#sec-oncall"
  text: "token {{ inputs.token }} for {{ inputs.who }}"
```
"""


@pytest.mark.usefixtures("prefect_api")
def test_a_secret_is_masked_before_it_is_escaped(
    home: Path, slack: FakeSlack, tmp_path: Path
) -> None:
    """In a message, a secret full of markup characters is masked (not escaped past the
    redaction's recognition) and the other values are escaped."""
    document = tmp_path / "secret-post.md"
    document.write_text(SECRET_POST)
    secret = "p&ss<w0rd>&more-9f2c"
    given = {"token": secret, "who": "<!here>"}
    outcome = start_run(slack_settings(home, slack), document, given)
    assert outcome.status == "succeeded", outcome.error
    [text] = [call.body["text"] for call in slack.calls("chat.postMessage")]
    assert text == "token [REDACTED] for &lt;!here&gt;"

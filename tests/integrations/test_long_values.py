"""The shipped credential-leak runbook with a `service` too long for Jira's summary and Slack's
topic, through the real clients on fakes: cut with a marker, and every step goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.engine.runner import start_run
from flows.engine.settings import Settings
from integrations.limits import MARKER, length
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.support import PROJECT

pytestmark = pytest.mark.usefixtures("prefect_api")

LEAK = PROJECT / "runbooks" / "breach" / "credential-leak.md"
SERVICE = "payments-" + "x" * 291  # 300 characters


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    server = FakeJira().start()
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with serve_slack() as server:
        server.add_channel("sec-oncall")
        yield server


def test_300_character_service_opens_ticket_channel_and_page(
    home: Path, jira: FakeJira, slack: FakeSlack
) -> None:
    """The ticket's summary is cut to 255 characters ending in the marker, the channel's topic
    to 250, and the run opens its ticket and channel, pages #sec-oncall and waits at triage."""
    settings = Settings(
        home=home,
        prefect="external",
        jira_url=jira.url,
        jira_user="bot@example.com",
        jira_token=SecretStr("api-token"),
        slack_bot_token=SecretStr(slack.token),
        slack_api_url=slack.url,
    )
    outcome = start_run(settings, LEAK, {"service": SERVICE})
    assert outcome.status == "waiting", outcome
    assert (outcome.steps["ticket"], outcome.steps["page_oncall"]) == ("succeeded", "succeeded")

    [issue] = jira.issues.values()
    assert length(issue.fields["summary"]) == 255
    assert issue.fields["summary"].endswith(MARKER)
    [channel] = [c for c in slack.channels.values() if c.name.startswith("inc-")]
    assert len(channel.topic) == 250 and channel.topic.endswith(MARKER)
    oncall = slack.channel_named("sec-oncall")
    assert oncall is not None
    [page] = slack.messages[oncall.id]
    assert SERVICE in page["text"]

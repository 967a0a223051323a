"""The credential-leak runbook end to end through the real Jira and Slack clients, on fakes.

The engine, Prefect and both SDKs are real; only Jira and Slack are loopback fakes that speak
their REST shapes. Each test checks what reached the fakes, not what the engine says it did.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.engine.runner import resume_run, start_run
from flows.engine.settings import Settings
from flows.evidence.verify import read_records, verify_ledger
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack, serve_slack
from tests.support import PROJECT, RUNBOOK_CLI, RosterResponder, cli_env

pytestmark = pytest.mark.usefixtures("prefect_api")

LEAK = PROJECT / "runbooks" / "breach" / "credential-leak.md"
JIRA_TOKEN = "canary-jira-4c1d9e7f"
SLACK_TOKEN = "xoxb-canary-slack-77aa01"
CREATE = r"^/rest/api/\d/issue$"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    """A fake Jira Cloud with the SEC project, accepting the canary token."""
    server = FakeJira(token=JIRA_TOKEN).start()
    server.add_project("SEC")
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fake Slack with the #sec-oncall channel, accepting the canary bot token."""
    with serve_slack(FakeSlack(token=SLACK_TOKEN)) as server:
        server.add_channel("sec-oncall")
        yield server


@pytest.fixture
def settings(home: Path, jira: FakeJira, slack: FakeSlack) -> Settings:
    """Engine settings pointing the real clients at the fakes."""
    return Settings(
        home=home,
        prefect="external",
        jira_url=jira.url,
        jira_user="bot@example.com",
        jira_token=SecretStr(JIRA_TOKEN),
        slack_bot_token=SecretStr(SLACK_TOKEN),
        slack_api_url=slack.url,
    )


def channels_created(slack: FakeSlack) -> int:
    return len([c for c in slack.channels.values() if c.name.startswith("inc-")])


def assert_no_tokens(home: Path, *texts: str) -> None:
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert JIRA_TOKEN.encode() not in data and SLACK_TOKEN.encode() not in data, path
    for text in texts:
        assert JIRA_TOKEN not in text and SLACK_TOKEN not in text


def test_credential_leak_runs_end_to_end_through_real_clients(
    settings: Settings, jira: FakeJira, slack: FakeSlack, home: Path
) -> None:
    """The whole runbook opens one ticket, one channel, posts, comments and resolves."""
    outcome = start_run(settings, LEAK, {"service": "api"}, responder=RosterResponder())
    assert outcome.status == "succeeded", outcome
    assert jira.count("POST", CREATE) == 1
    assert channels_created(slack) == 1
    issue = next(iter(jira.issues.values()))
    assert issue.status == "Resolved"
    assert slack.count("chat.postMessage") >= 3
    assert verify_ledger(outcome.evidence).ok
    assert_no_tokens(home)


def test_resumed_run_leaves_one_ticket_and_one_channel(
    settings: Settings, jira: FakeJira, slack: FakeSlack
) -> None:
    """Stopping at a gate and resuming does not create a second ticket or channel."""
    first = start_run(settings, LEAK, {"service": "api"})
    assert first.status == "waiting"
    posts = slack.count("chat.postMessage")
    second = resume_run(settings, first.incident, responder=RosterResponder())
    assert second.status == "succeeded"
    assert jira.count("POST", CREATE) == 1
    assert channels_created(slack) == 1
    assert slack.count("chat.postMessage") > posts


def test_crash_after_jira_answered_create_does_not_duplicate(
    settings: Settings, jira: FakeJira, slack: FakeSlack, home: Path
) -> None:
    """A run that dies after Jira created the ticket, before the engine recorded it, resumes
    to the same ticket, even with the local idempotency map lost."""
    jira.drop_response_after_create()
    first = start_run(settings, LEAK, {"service": "api"})
    # The create's answer was lost: the step looked for the ticket instead of posting again.
    assert jira.count("POST", CREATE) == 1
    (home / "idempotency.db").unlink(missing_ok=True)
    second = resume_run(settings, first.incident, responder=RosterResponder())
    assert second.status == "succeeded", second
    assert jira.count("POST", CREATE) == 1
    assert len(jira.issues) == 1
    assert channels_created(slack) == 1


def test_rate_limited_post_is_waited_out(settings: Settings, slack: FakeSlack) -> None:
    """A 429 with Retry-After: 2 from Slack delays the run; the message is posted once."""
    slack.fail_next("chat.postMessage", status=429, retry_after=2)
    started = time.monotonic()
    outcome = start_run(settings, LEAK, {"service": "api"})
    assert time.monotonic() - started >= 2
    assert outcome.status == "waiting"
    posted = sum(len(messages) for messages in slack.messages.values())
    # Every request but the refused one became exactly one message.
    assert posted == slack.count("chat.postMessage") - 1
    assert posted >= 2


def test_jira_down_fails_ticket_step_but_chat_still_goes_out(
    settings: Settings, jira: FakeJira, slack: FakeSlack, home: Path
) -> None:
    """With Jira answering 500, the ticket step fails with its reason in the evidence."""
    jira.fail_next(CREATE, 500, times=50)
    outcome = start_run(settings, LEAK, {"service": "api"})
    assert outcome.status == "failed"
    assert outcome.steps["ticket"] == "failed"
    failures = [
        r for r in read_records(outcome.evidence) if r.event == "step.failed" and r.step == "ticket"
    ]
    assert failures and "500" in failures[0].data["error"]
    assert len(jira.issues) == 0


def test_cli_run_keeps_tokens_out_of_console(jira: FakeJira, slack: FakeSlack, home: Path) -> None:
    """`runbook run` with real backends configured prints no token, and doctor checks both."""
    env = cli_env(
        home,
        RUNBOOK_JIRA_URL=jira.url,
        RUNBOOK_JIRA_USER="bot@example.com",
        RUNBOOK_JIRA_TOKEN=JIRA_TOKEN,
        RUNBOOK_SLACK_BOT_TOKEN=SLACK_TOKEN,
        RUNBOOK_SLACK_API_URL=slack.url,
    )
    run = subprocess.run(
        [*RUNBOOK_CLI, "run", str(LEAK), "--input", "service=api", "--json"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
        cwd=PROJECT,
    )
    assert run.returncode == 3, run.stderr
    doctor = subprocess.run(
        [*RUNBOOK_CLI, "doctor"],
        env={**env, "RUNBOOK_SLACK_DRILL_CHANNEL": "#ir-drills"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "tickets   ok: Jira" in doctor.stdout and "chat      ok: Slack" in doctor.stdout
    assert "drills run by the server talk in Slack #ir-drills" in doctor.stdout
    assert_no_tokens(home, run.stdout, run.stderr, doctor.stdout, doctor.stderr)

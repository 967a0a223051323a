"""Settings: the environment variables users set, `runbook.toml`, and the configs they fill."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from flows.engine.settings import Settings
from integrations.config import SLACK_API_URL, JiraConfig, SlackConfig


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RUNBOOK_* variable from outside the test, and no runbook.toml but the test's own."""
    for name in list(os.environ):
        if name.upper().startswith("RUNBOOK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_every_jira_and_slack_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each RUNBOOK_JIRA_* and RUNBOOK_SLACK_* variable lands in its config or setting."""
    env = {
        "RUNBOOK_JIRA_URL": "https://example.atlassian.net",
        "RUNBOOK_JIRA_USER": "bot@example.com",
        "RUNBOOK_JIRA_TOKEN": "jira-api-token",
        "RUNBOOK_JIRA_PAT": "jira-pat-value",
        "RUNBOOK_JIRA_TIMEOUT_S": "7.5",
        "RUNBOOK_JIRA_MAX_RETRY_WAIT_S": "42",
        "RUNBOOK_JIRA_RECONCILE_S": "45",
        "RUNBOOK_SLACK_BOT_TOKEN": "xoxb-bot-token",
        "RUNBOOK_SLACK_API_URL": "http://127.0.0.1:9/api/",
        "RUNBOOK_SLACK_TIMEOUT_S": "3",
        "RUNBOOK_SLACK_MAX_RATE_LIMIT_RETRIES": "2",
        "RUNBOOK_SLACK_RECONCILE_S": "12",
        "RUNBOOK_SLACK_SIGNING_SECRET": "signing-secret",
        "RUNBOOK_SLACK_APP_TOKEN": "xapp-app-token",
        "RUNBOOK_SLACK_DRILL_CHANNEL": "#drills",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.jira() == JiraConfig(
        url="https://example.atlassian.net",
        user="bot@example.com",
        token=SecretStr("jira-api-token"),
        pat=SecretStr("jira-pat-value"),
        timeout_s=7.5,
        max_retry_wait_s=42,
        reconcile_s=45,
    )
    assert settings.slack() == SlackConfig(
        bot_token=SecretStr("xoxb-bot-token"),
        api_url="http://127.0.0.1:9/api/",
        timeout_s=3,
        max_rate_limit_retries=2,
        reconcile_s=12,
    )
    assert settings.slack_signing_secret == SecretStr("signing-secret")
    assert settings.slack_app_token == SecretStr("xapp-app-token")
    assert settings.slack_drill_channel == "#drills"


def test_lowercase_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names are case-insensitive, as they were before the configs were embedded."""
    monkeypatch.setenv("runbook_jira_url", "https://jira.example.com")
    monkeypatch.setenv("runbook_jira_max_retry_wait_s", "5")
    jira = Settings().jira()
    assert jira is not None and (jira.url, jira.max_retry_wait_s) == ("https://jira.example.com", 5)


def test_nothing_set_means_the_local_backends() -> None:
    """Without RUNBOOK_JIRA_URL and RUNBOOK_SLACK_BOT_TOKEN, no Jira or Slack config."""
    settings = Settings()
    assert settings.jira() is None and settings.slack() is None


def test_settings_without_the_key_one_configure_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A timeout without a Jira URL, an API URL or signing secret without a token: local."""
    monkeypatch.setenv("RUNBOOK_JIRA_TIMEOUT_S", "5")
    monkeypatch.setenv("RUNBOOK_JIRA_URL", "")
    monkeypatch.setenv("RUNBOOK_SLACK_API_URL", "http://127.0.0.1:9/api/")
    monkeypatch.setenv("RUNBOOK_SLACK_SIGNING_SECRET", "signing-secret")
    settings = Settings()
    assert settings.jira() is None and settings.slack() is None
    assert settings.slack_signing_secret == SecretStr("signing-secret")


def test_runbook_toml_keeps_its_flat_keys(tmp_path: Path) -> None:
    """`jira_url = ...` and `slack_bot_token = ...` in runbook.toml still configure the backends."""
    (tmp_path / "runbook.toml").write_text(
        'jira_url = "https://jira.example.com"\n'
        'jira_user = "bot@example.com"\n'
        "jira_timeout_s = 9\n"
        'slack_bot_token = "xoxb-from-toml"\n'
        'slack_drill_channel = "#drills"\n'
    )
    settings = Settings()
    assert settings.jira() == JiraConfig(
        url="https://jira.example.com", user="bot@example.com", timeout_s=9
    )
    assert settings.slack() == SlackConfig(bot_token=SecretStr("xoxb-from-toml"))
    assert settings.slack_drill_channel == "#drills"


def test_runbook_toml_may_use_tables(tmp_path: Path) -> None:
    """A `[jira]` table in runbook.toml fills the same config as the flat keys."""
    (tmp_path / "runbook.toml").write_text('[jira]\nurl = "https://jira.example.com"\npat = "p"\n')
    assert Settings().jira() == JiraConfig(url="https://jira.example.com", pat=SecretStr("p"))


def test_environment_wins_over_runbook_toml_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable overrides its key in runbook.toml; the file's other keys still count."""
    (tmp_path / "runbook.toml").write_text(
        'jira_url = "https://from-toml.example.com"\njira_user = "toml@example.com"\n'
    )
    monkeypatch.setenv("RUNBOOK_JIRA_URL", "https://from-env.example.com")
    jira = Settings().jira()
    assert jira is not None
    assert (jira.url, jira.user) == ("https://from-env.example.com", "toml@example.com")


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Settings(jira_url=...)`, as tests and tools build it, overrides the environment."""
    monkeypatch.setenv("RUNBOOK_JIRA_URL", "https://from-env.example.com")
    monkeypatch.setenv("RUNBOOK_JIRA_USER", "env@example.com")
    settings = Settings(jira_url="https://given.example.com", slack_bot_token=SecretStr("xoxb-1"))
    jira, slack = settings.jira(), settings.slack()
    assert jira is not None and (jira.url, jira.user) == (
        "https://given.example.com",
        "env@example.com",
    )
    assert slack == SlackConfig(bot_token=SecretStr("xoxb-1"), api_url=SLACK_API_URL)


def test_configured_tokens_are_known_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Jira token and PAT and the Slack bot token are redacted wherever they appear."""
    monkeypatch.setenv("RUNBOOK_JIRA_URL", "https://jira.example.com")
    monkeypatch.setenv("RUNBOOK_JIRA_TOKEN", "jira-api-token")
    monkeypatch.setenv("RUNBOOK_JIRA_PAT", "jira-pat-value")
    monkeypatch.setenv("RUNBOOK_SLACK_BOT_TOKEN", "xoxb-bot-token")
    secrets = Settings().known_secrets()
    assert {"jira-api-token", "jira-pat-value", "xoxb-bot-token"} <= set(secrets)

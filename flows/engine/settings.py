"""One typed settings object, read once from the environment (and `runbook.toml`), handed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.evidence.redact import Redactor
from integrations.config import SLACK_API_URL, JiraConfig, SlackConfig


class Settings(BaseSettings):
    """Engine settings: `RUNBOOK_*` environment variables, then `runbook.toml`, then defaults."""

    model_config = SettingsConfigDict(
        env_prefix="RUNBOOK_", extra="ignore", frozen=True, toml_file="runbook.toml"
    )

    home: Path = Field(
        default=Path(".runbook"), description="Where incidents, tickets and the outbox live."
    )
    prefect: Literal["local-server", "ephemeral", "external"] = Field(
        default="local-server",
        description=(
            "local-server: start (once) and reuse a Prefect server under RUNBOOK_HOME; "
            "ephemeral: Prefect's temporary per-process server; "
            "external: use PREFECT_API_URL as configured."
        ),
    )
    prefect_ui: bool = Field(default=False, description="Serve Prefect's UI from the local server.")

    jira_url: str | None = Field(default=None, description="Jira base URL; unset = local store.")
    jira_user: str | None = Field(default=None, description="Jira Cloud account email.")
    jira_token: SecretStr | None = Field(default=None, description="Jira Cloud API token.")
    jira_pat: SecretStr | None = Field(default=None, description="Jira Server/DC access token.")
    jira_timeout_s: float = Field(default=20.0, description="Per-request timeout for Jira.")
    jira_max_retry_wait_s: float = Field(
        default=300.0, description="Longest Retry-After from Jira that a step waits out."
    )

    slack_bot_token: SecretStr | None = Field(
        default=None, description="Slack bot token; unset = local outbox."
    )
    slack_api_url: str = Field(default=SLACK_API_URL, description="Slack Web API base URL.")
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Verifies requests from Slack (slash commands, buttons)."
    )

    slack_drill_channel: str | None = Field(
        default=None,
        description="Slack channel for drills the server runs: their messages and gate buttons "
        "go there and nowhere else in Slack. Unset = the drill outbox, gates from the script.",
    )
    slack_app_token: SecretStr | None = Field(
        default=None, description="App-level token (xapp-...) for Socket Mode."
    )
    webhook_token: SecretStr | None = Field(
        default=None, description="Bearer token for Alertmanager, Datadog and generic webhooks."
    )
    pagerduty_secret: SecretStr | None = Field(
        default=None, description="PagerDuty webhook secret(s), comma-separated for rotation."
    )
    grafana_secret: SecretStr | None = Field(
        default=None, description="Grafana webhook HMAC secret."
    )
    grafana_signature_header: str = Field(
        default="X-Grafana-Alerting-Signature", description="Header carrying Grafana's HMAC."
    )
    grafana_timestamp_header: str | None = Field(
        default=None, description="Grafana's timestamp header, when it signs timestamp:body."
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions whose matches are redacted everywhere.",
    )
    workers: int = Field(default=2, ge=1, le=64, description="Runs the server executes at once.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over runbook.toml, which wins over the defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def incidents_dir(self) -> Path:
        return self.home / "incidents"

    def known_secrets(self) -> list[str]:
        """Every configured secret value, so redaction catches them wherever they appear."""
        values = [
            self.jira_token,
            self.jira_pat,
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.webhook_token,
            self.pagerduty_secret,
            self.grafana_secret,
        ]
        found = [v.get_secret_value() for v in values if v is not None]
        return [part.strip() for value in found for part in value.split(",") if part.strip()]

    def redactor(self, secrets: list[str] | None = None) -> Redactor:
        """A redactor for this install: configured secrets, extra ones, configured patterns."""
        return Redactor(
            secrets=[*self.known_secrets(), *(secrets or [])], patterns=self.redact_patterns
        )

    def jira(self) -> JiraConfig | None:
        """Jira connection settings, or None to use the local ticket store."""
        if not self.jira_url:
            return None
        return JiraConfig(
            url=self.jira_url,
            user=self.jira_user,
            token=self.jira_token,
            pat=self.jira_pat,
            timeout_s=self.jira_timeout_s,
            max_retry_wait_s=self.jira_max_retry_wait_s,
        )

    def slack(self) -> SlackConfig | None:
        """Slack connection settings, or None to use the local outbox."""
        if self.slack_bot_token is None:
            return None
        return SlackConfig(bot_token=self.slack_bot_token, api_url=self.slack_api_url)


def load_settings() -> Settings:
    """Read the settings from the environment and `runbook.toml` in the working directory."""
    return Settings()

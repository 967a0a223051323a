"""One typed settings object, read once from the environment (and `runbook.toml`), handed down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from flows.evidence.incident import incidents_under
from flows.evidence.personal import PersonalData, PersonalDataRedactor
from flows.evidence.redact import Redactor
from integrations.config import JiraConfig, MlflowConfig, SlackConfig

TOML_FILE = "runbook.toml"
"""Read from the working directory, below the environment."""
EMBEDDED: dict[str, type[BaseModel]] = {
    "jira": JiraConfig,
    "slack": SlackConfig,
    "mlflow": MlflowConfig,
}
"""The integration configs the settings hold, by the prefix their settings have."""


class Settings(BaseSettings):
    """Engine settings: `RUNBOOK_*` environment variables, then `runbook.toml`, then defaults."""

    # RUNBOOK_JIRA_TIMEOUT_S is `jira.timeout_s`: the prefix (with the alias, "all") names the
    # model, the first "_" after it splits it off, and the rest, underscores and all, is its field.
    model_config = SettingsConfigDict(
        env_prefix="RUNBOOK_",
        env_prefix_target="all",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
        frozen=True,
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

    jira_config: JiraConfig | None = Field(
        default=None,
        validation_alias="jira",
        description="Jira (RUNBOOK_JIRA_URL, _USER, _TOKEN, _PAT, _TIMEOUT_S, _MAX_RETRY_WAIT_S,"
        " _RECONCILE_S); without a URL, the local ticket store.",
    )
    slack_config: SlackConfig | None = Field(
        default=None,
        validation_alias="slack",
        description="Slack (RUNBOOK_SLACK_BOT_TOKEN, _API_URL, _TIMEOUT_S,"
        " _MAX_RATE_LIMIT_RETRIES, _RECONCILE_S); without a bot token, the local outbox.",
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Verifies requests from Slack (slash commands, buttons)."
    )
    mlflow_config: MlflowConfig | None = Field(
        default=None,
        validation_alias="mlflow",
        description="MLflow's Model Registry for the mlflow.* actions (RUNBOOK_MLFLOW_URL, _TOKEN,"
        " _USER, _TIMEOUT_S); without a URL, those steps fail saying so.",
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
    tsa_roots: str | None = Field(
        default=None,
        description="Trust anchors of sealed evidence: PEM files of the timestamp authorities'"
        " root certificates, separated by ':'. `evidence verify` checks every timestamp's"
        " signature and chain against them; without any, a timestamp's time is unverified.",
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions whose matches are redacted everywhere.",
    )
    # NoDecode: the environment spells the list `email,card` (or `none`), not as JSON.
    redact_personal_data: Annotated[list[PersonalData], NoDecode] = Field(
        default_factory=lambda: list(PersonalData),
        description="Personal data redacted from what arrives from outside (collected"
        " artifacts, alert payloads): any of email, phone, card, national_id, iban,"
        " comma-separated; `none` for none. Default: all.",
    )
    redact_phone_region: str = Field(
        default="US",
        pattern=r"^[A-Z]{2}$",
        description="Where phone numbers written without `+` and a country code are from"
        " (ISO 3166 code: US, GB, DE, ...).",
    )
    workers: int = Field(default=2, ge=1, le=64, description="Runs the server executes at once.")
    gate_scan_s: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="How often the server checks the timers of waiting gates (seconds):"
        " reminders, escalations, pages, and timeouts that fail or continue a run.",
    )
    stuck_job_s: float = Field(
        default=900.0,
        gt=0,
        description="How long a queued job may wait for a worker before `/healthz` answers 503"
        " (seconds): longer means the workers are stuck or too few.",
    )
    allow_sqlite_prefect: bool = Field(
        default=False,
        description="Let `runbook serve --via-deployments` submit to a Prefect server on SQLite,"
        " which serializes its workers' writes and loses submissions under bursts of alerts.",
    )
    flow_run_pending_s: float = Field(
        default=900.0,
        gt=0,
        description="With --via-deployments: how long a flow run a Prefect worker took may stay"
        " Pending before it is cancelled and the incident resumed, even while that worker lives"
        " (seconds); one whose worker Prefect marks offline is resumed at once.",
    )
    flow_run_scheduled_s: float = Field(
        default=3600.0,
        gt=0,
        description="With --via-deployments: how long a flow run may wait for a Prefect worker"
        " (Scheduled, Late) before it is cancelled and submitted again (seconds).",
    )
    roster: Path | None = Field(
        default=None,
        description="The responders roster (responders.yaml) for every runbook; unset: the"
        " nearest responders.yaml in the runbook's folder or above it.",
    )

    @field_validator("redact_personal_data", mode="before")
    @classmethod
    def _kinds_from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        words = [word.strip().lower() for word in value.split(",") if word.strip()]
        return [] if words == ["none"] else words

    @field_validator("jira_config", "slack_config", "mlflow_config", mode="before")
    @classmethod
    def _unset_without_its_key(cls, value: Any, info: ValidationInfo) -> Any:
        # RUNBOOK_SLACK_API_URL alone, or RUNBOOK_JIRA_URL="", configure nothing: the local
        # backends stay. The Slack group also sees RUNBOOK_SLACK_SIGNING_SECRET and the other
        # slack_* settings below; SlackConfig ignores them.
        key = "bot_token" if info.field_name == "slack_config" else "url"
        return None if isinstance(value, Mapping) and not value.get(key) else value

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
        toml = TomlConfigSettingsSource(settings_cls, toml_file=TOML_FILE)
        return (_Embedded(init_settings), env_settings, _Embedded(toml))

    @property
    def incidents_dir(self) -> Path:
        return incidents_under(self.home)

    def known_secrets(self) -> list[str]:
        """Every configured secret value, so redaction catches them wherever they appear."""
        jira, slack, mlflow = self.jira_config, self.slack_config, self.mlflow_config
        values = [
            jira.token if jira else None,
            jira.pat if jira else None,
            slack.bot_token if slack else None,
            mlflow.token if mlflow else None,
            self.slack_signing_secret,
            self.slack_app_token,
            self.webhook_token,
            self.pagerduty_secret,
            self.grafana_secret,
        ]
        found = [v.get_secret_value() for v in values if v is not None]
        return [part.strip() for value in found for part in value.split(",") if part.strip()]

    def tsa_root_files(self) -> list[Path]:
        """The PEM files named by RUNBOOK_TSA_ROOTS, in order."""
        return [Path(part) for part in (self.tsa_roots or "").split(":") if part.strip()]

    def redactor(self, secrets: list[str] | None = None) -> Redactor:
        """A redactor for this install: configured secrets, extra ones, configured patterns,
        and the personal data it redacts from what arrives from outside."""
        return Redactor(
            secrets=[*self.known_secrets(), *(secrets or [])],
            patterns=self.redact_patterns,
            personal=PersonalDataRedactor(self.redact_personal_data, self.redact_phone_region),
        )

    def jira(self) -> JiraConfig | None:
        """Jira connection settings, or None to use the local ticket store."""
        return self.jira_config

    def slack(self) -> SlackConfig | None:
        """Slack connection settings, or None to use the local outbox."""
        return self.slack_config

    def mlflow(self) -> MlflowConfig | None:
        """The MLflow tracking server the mlflow.* actions use, or None when none is set."""
        return self.mlflow_config


class _Embedded(PydanticBaseSettingsSource):
    """A source whose flat keys (`jira_url`) fill the embedded configs' fields (`jira.url`).

    `runbook.toml` and `Settings(...)` spell the settings as they always have, flat, as the
    environment does; the environment source nests its variables by itself.
    """

    def __init__(self, inner: PydanticBaseSettingsSource) -> None:
        super().__init__(inner.settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: `__call__` returns the inner source's values, nested."""
        return None, "", False

    def __call__(self) -> dict[str, Any]:
        values = dict(self.inner())
        for prefix, model in EMBEDDED.items():
            flat = {
                name: values.pop(f"{prefix}_{name}")
                for name in model.model_fields
                if f"{prefix}_{name}" in values
            }
            if flat:
                nested = values.get(prefix)
                if isinstance(nested, BaseModel):
                    nested = dict(nested)
                # Within one source the nested spelling (a [jira] table) wins over the flat one.
                values[prefix] = {**flat, **(nested or {})}
        return values


def load_settings() -> Settings:
    """Read the settings from the environment and `runbook.toml` in the working directory."""
    return Settings()

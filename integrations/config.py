"""Connection settings of the real backends, as typed models with secrets kept as SecretStr."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

SLACK_API_URL = "https://slack.com/api/"


class JiraConfig(BaseModel):
    """Jira Cloud (email + API token) or Server/Data Center (personal access token)."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(description="Base URL, e.g. https://example.atlassian.net")
    user: str | None = Field(default=None, description="Cloud: the account's email.")
    token: SecretStr | None = Field(default=None, description="Cloud: an API token.")
    pat: SecretStr | None = Field(default=None, description="Server/DC: a personal access token.")
    timeout_s: float = Field(default=20.0, description="Per-request timeout.")
    max_retry_wait_s: float = Field(
        default=300.0, description="Longest Retry-After the engine will wait out before failing."
    )
    reconcile_s: float = Field(
        default=30.0,
        gt=0,
        description="How long Jira's search may lag behind a create: a ticket whose create went"
        " unanswered is searched for until this long after the request gave up.",
    )


class SlackConfig(BaseModel):
    """A Slack app's bot token, and where the Web API is."""

    model_config = ConfigDict(frozen=True)

    bot_token: SecretStr = Field(description="Bot token (xoxb-...).")
    api_url: str = Field(default=SLACK_API_URL, description="Web API base URL.")
    timeout_s: float = Field(default=20.0, description="Per-request timeout.")
    max_rate_limit_retries: int = Field(default=5, description="429 retries per call.")
    reconcile_s: float = Field(
        default=30.0,
        gt=0,
        description="How long a channel whose create went unanswered is looked for by name.",
    )


class MlflowConfig(BaseModel):
    """An MLflow tracking server, whose Model Registry the `mlflow.*` actions read and change."""

    model_config = ConfigDict(frozen=True)

    url: str = Field(
        description="The tracking server's base URL (its tracking URI), e.g."
        " http://mlflow.internal:5000; a path prefix a proxy adds is kept."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Sent as a Bearer token; with `user`, the password of basic auth.",
    )
    user: str | None = Field(
        default=None,
        description="Basic auth user (MLflow's basic-auth app); `token` is its password.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout.")

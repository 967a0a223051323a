"""One typed settings object, read once from the environment and handed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Engine settings: `RUNBOOK_*` environment variables (the environment wins over defaults)."""

    model_config = SettingsConfigDict(env_prefix="RUNBOOK_", extra="ignore", frozen=True)

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

    @property
    def incidents_dir(self) -> Path:
        return self.home / "incidents"


def load_settings() -> Settings:
    """Read the settings from the environment."""
    return Settings()

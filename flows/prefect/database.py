"""Which database the Prefect server behind the API keeps its state in, as far as it says.

The server's settings (`GET /api/admin/settings`) mask the connection URL, but show the database
driver when one is configured: the engine's local server always names its own (see
`local_server`), a server started otherwise only when `PREFECT_SERVER_DATABASE_DRIVER` (or
`PREFECT_API_DATABASE_DRIVER`) was set for it. Otherwise the database cannot be told from here.
"""

from __future__ import annotations

from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL

from flows.errors import RunbookError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"


def server_database() -> str | None:
    """`sqlite` or `postgresql` as the configured Prefect server reports it; None when it does
    not say (no driver configured, or settings it will not show)."""
    try:
        with get_client(sync_client=True) as client:
            settings = client.request("GET", "/admin/settings").json()
    except (httpx.HTTPError, PrefectHTTPStatusError, ValueError):
        return None
    return database_of(settings)


def database_of(settings: Any) -> str | None:
    """The database named by a Prefect server's settings document, if it names one."""
    try:
        database = settings["server"]["database"]
    except (KeyError, TypeError):
        return None
    if not isinstance(database, dict):
        return None
    for value in (database.get("driver"), database.get("connection_url")):
        # A URL shows only when it is not masked (`**********`): its scheme names the driver.
        if isinstance(value, str) and value.startswith(("sqlite", "postgresql")):
            return SQLITE if value.startswith("sqlite") else POSTGRESQL
    return None


def check_for_deployments(*, allow_sqlite: bool) -> list[str]:
    """Refuse scale-out through a Prefect server on SQLite unless allowed; return the notes to
    print at start (allowed anyway, or a database that cannot be told)."""
    where = f"the Prefect server at {PREFECT_API_URL.value()}"
    database = server_database()
    if database == SQLITE and not allow_sqlite:
        raise RunbookError(
            f"--via-deployments refused: {where} keeps its state in SQLite, which serializes"
            " the Prefect workers' writes and loses flow-run submissions under bursts of"
            " alerts; run it on PostgreSQL (PREFECT_API_DATABASE_CONNECTION_URL="
            "postgresql+asyncpg://...), or pass --allow-sqlite-prefect to take the risk"
        )
    if database == SQLITE:
        return [
            f"{where} runs on SQLite (--allow-sqlite-prefect): under bursts of alerts it"
            " answers 503 and flow runs crash unsubmitted; each is resumed, but PostgreSQL"
            " is the database for scale-out"
        ]
    if database is None:
        return [
            f"cannot tell which database {where} uses (its settings name no driver): on"
            " SQLite, --via-deployments loses submissions under load; set"
            " PREFECT_SERVER_DATABASE_DRIVER=postgresql+asyncpg on a server on PostgreSQL"
        ]
    return []

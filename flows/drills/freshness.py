"""Drill freshness: when each runbook was last drilled and last run for real, and which are stale.

SOC 2 CC9.1 / CC7.5 ask that the response plan is tested periodically; a runbook nobody has
drilled within `max_age_days` (or ever) is stale, whatever its real use.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from flows.evidence.incident import Incident, incidents_under, list_incidents


class Row(BaseModel):
    """One runbook's last drill and last real run (None: never), and whether it is stale."""

    model_config = ConfigDict(frozen=True)

    runbook: str
    last_drill: datetime | None
    last_drill_incident: str | None
    last_real: datetime | None
    last_real_incident: str | None
    stale: bool


def _started(incident: Incident) -> datetime:
    return datetime.fromisoformat(incident.started_at.replace("Z", "+00:00"))


def freshness(
    home: Path,
    runbooks: Iterable[str],
    max_age_days: int = 90,
    now: datetime | None = None,
) -> list[Row]:
    """One row per runbook id, from the incidents under `home`, in the order given."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=max_age_days)
    latest: dict[tuple[str, bool], Incident] = {}
    for incident in list_incidents(incidents_under(home)):  # oldest first: later ones win
        latest[(incident.runbook.id, incident.drill)] = incident
    rows = []
    for runbook in runbooks:
        drill, real = latest.get((runbook, True)), latest.get((runbook, False))
        drilled = _started(drill) if drill else None
        rows.append(
            Row(
                runbook=runbook,
                last_drill=drilled,
                last_drill_incident=drill.id if drill else None,
                last_real=_started(real) if real else None,
                last_real_incident=real.id if real else None,
                stale=drilled is None or drilled < cutoff,
            )
        )
    return rows

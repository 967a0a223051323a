"""Helpers shared by tests: fixture paths and how to run the `runbook` CLI as a subprocess."""

from __future__ import annotations

import os
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).parent.parent
RUNBOOK_CLI = [sys.executable, "-m", "flows.cli"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `runbook` subprocess using this test's home and the session's server."""
    env = {**os.environ, "RUNBOOK_HOME": str(home), **extra}
    env.setdefault("RUNBOOK_PREFECT", "external" if "PREFECT_API_URL" in env else "local-server")
    return env

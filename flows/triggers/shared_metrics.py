"""Metrics shared by `runbook serve` and its worker process: prometheus_client's multiprocess mode.

prometheus_client chooses, once, when it is first imported, whether a process keeps its values
in memory or in files of the folder named by PROMETHEUS_MULTIPROC_DIR. `runbook serve` sets that
folder before anything imports it, and the worker process, spawned afterwards, inherits it, so
every count of either process reaches `/metrics` (flows.triggers.metrics). This module imports
nothing of prometheus_client for that reason.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from flows.errors import RunbookError

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METRICS_FOLDER = "metrics"
"""Under the engine home: one file per process and kind of metric, cleared at each start."""


def share_metrics(home: Path) -> Path:
    """Empty `$RUNBOOK_HOME/metrics` and have every process started from now on count there.

    Call it before prometheus_client is imported (before anything that imports Prefect, the
    app or the metrics): a process that imported it already would count in memory, unseen.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the metrics folder was set: call"
            " share_metrics() before importing the server"
        )
    folder = home / METRICS_FOLDER
    # Counts of a previous server are not this one's: its files would be added to ours.
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunbookError(
            f"cannot make the metrics folder {folder}: {error.strerror}; check that the engine"
            " home (RUNBOOK_HOME) is writable and has free space"
        ) from None
    os.environ[MULTIPROC_VARIABLE] = str(folder.resolve())
    return folder

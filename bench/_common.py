"""Shared bench helpers: a warm local Prefect server and simple statistics."""

from __future__ import annotations

import atexit
import os
import statistics
from pathlib import Path


def warm_server(home: Path) -> str:
    """Start (or reuse) the engine's local Prefect server and point this process at it."""
    from flows.prefect.local_server import start_server, stop_server

    info = start_server(home)
    atexit.register(stop_server, home)  # an idle server still costs CPU: never leave one behind
    os.environ["PREFECT_API_URL"] = info.url
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return info.url


def summary(samples: list[float]) -> str:
    """min / median / max in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    return f"min {ms[0]:.1f} ms, median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms"

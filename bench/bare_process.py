"""The bare Prefect baseline as its own process: import Prefect, run the hand-written flow, exit."""

from __future__ import annotations

import sys
from pathlib import Path

from run_overhead import bare_flow, run_bare

if __name__ == "__main__":
    home, steps, incident = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    run_bare(bare_flow(home, steps), incident)

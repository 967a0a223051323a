"""`python -m flows.cli`: the same command line as the `runbook` script."""

import sys

from flows.cli.app import console

sys.exit(console())

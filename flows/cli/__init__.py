"""The `runbook` command line, one module per command group."""

"""The runbook engine: Markdown runbooks -> checked model -> Prefect flow -> evidence ledger.

Importing this package is cheap on purpose: `runbook validate` must never pull in Prefect.
"""

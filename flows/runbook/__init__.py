"""The runbook document, from Markdown to a checked plan. Never imports Prefect or the engine."""

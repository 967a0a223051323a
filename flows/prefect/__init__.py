"""Prefect around the engine: the local server the engine reuses, deployments for scale-out."""

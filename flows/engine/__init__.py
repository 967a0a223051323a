"""The engine: settings, the action registry, plan execution, Prefect compilation, the runner."""

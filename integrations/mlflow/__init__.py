"""MLflow's Model Registry: read a registered model's versions and aliases, move an alias, tag a
version (the `mlflow.*` actions), over the tracking server's REST API."""

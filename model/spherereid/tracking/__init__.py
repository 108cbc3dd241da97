"""MLflow: runs and retries (runs, connection), lineage tags, the gated registry and its version tags,
promotion, and the one home of MLflow's private API (mlflow_compat)."""

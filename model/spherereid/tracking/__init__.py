"""MLflow: runs and retries (runs, connection), lineage tags, the gated registry, the served pyfunc model."""

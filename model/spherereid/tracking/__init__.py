"""MLflow: the connection (client: URI, client, retries, MLflow's private API), every tag key (tags), run
lineage values (lineage), runs and the training run (runs), the spool that keeps training off the network
(spool), the gated registry with promotion and cross-dataset tags (registry) and its lock (registry_lock),
metrics on the LoggedModel (logged_model); pyfunc_model is a shim for models logged before a move."""

"""How a sweep's MLflow run ends: the results table and plots, the best trial's model (and the
registry), summary metrics and the final status. Runs where trials were logged (a local worker,
Argo's summary pod)."""

"""Plain data and settings, and the two foundations every other room stands on: the records a
sweep is made of (plan, trials, outcomes, their JSON), the typed settings, metrics, trust rules for
configs, and files through fsspec with the fault vocabulary (`storage`, `faults`). Nothing here
fits a model or talks to MLflow."""

"""Everything the sweep says to MLflow: `store` (a retrying client, SQLite set-up and locks),
`tracker` (the sweep's runs and their tags), `claims` (which process trains a trial), `registry`
(registered versions and the champion alias)."""

"""How a sweep searches its grid's configurations beyond training each in full (search=grid):
successive halving (`halving`). Plain data and decisions, no fitting and no MLflow: an executor
asks what to train next and tells what came of it."""

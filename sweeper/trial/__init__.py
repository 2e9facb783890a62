"""One trial, from a stored split to a recorded score: `lifecycle.run_trial` (reuse a finished
one, or claim, fit, score and log it), `fitting` (building, fitting and scoring the estimator),
`splits` (where a split is recorded and read back), `kept` (the best fitted model a worker keeps).
Every executor runs trials through here and nowhere else."""

"""From a command line to a plan: expand per-model grids into jobs, compose their configs, and
make the plan (trials, preprocess groups) that an executor runs."""

"""What people read: the live progress of a sweep and its ranked results table with MLflow's
compare link."""

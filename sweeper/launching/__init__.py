"""Hydra's side of a sweep: the launcher's work (jobs → batches), one sweep across batches
through one executor, and what an optimising sweeper brings (its budget and search space)."""

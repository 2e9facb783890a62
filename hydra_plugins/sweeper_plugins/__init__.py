"""Hydra plugins of the sweeper project: `hydra/sweeper=model_grid`, `hydra/launcher=sweeper`."""

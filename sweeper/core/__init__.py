"""The shared core: what steps, executors and the conclusion of a sweep all depend on, and which
depends on none of them: records (plan, outcomes, JSON), settings, storage and its layout,
MLflow tracking, fitting, and the one trial lifecycle."""

"""backend=local: a sweep's trials on this machine, in a pool of warm worker processes.

The executor is `executor.LocalExecutor`. This package imports nothing itself, so that
`python -m sweeper` reaches `pool` and starts the fork server before Hydra is even imported.
"""

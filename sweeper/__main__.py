import sys

# Only print something: no worker pool is needed, and `--help` stays quick.
_NO_RUN = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}

if _NO_RUN.isdisjoint(sys.argv[1:]):
    from sweeper.pool import warm_up_for

    warm_up_for(sys.argv[1:])  # first: the workers' imports overlap everything that follows

from sweeper.app import main  # noqa: E402

main()

import sys

from sweeper.executors.local.pool import warm_up_unless_elsewhere

# First: the workers' imports overlap everything that follows.
warm_up_unless_elsewhere(sys.argv[1:])

from sweeper.app import main  # noqa: E402

main()

import sys

from sweeper.pool import warm_up_for

warm_up_for(sys.argv[1:])  # first: the workers' imports overlap everything that follows

from sweeper.app import main  # noqa: E402

main()

import sys

from sweeper import start_workers_early

start_workers_early(sys.argv[1:])  # first: the workers' imports overlap everything that follows

from sweeper.app import main  # noqa: E402

main()

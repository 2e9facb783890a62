"""The README's commands, run as written: each row of its "Sweeps" table sweeps the number of
trials the row says, and the quick start's command ends in the table and the compare link."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from support.servers import run_sweeper

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\| `(python -m sweeper [^`]+)` \| [^|]+ \| (\d+) \|$")


def sweep_rows() -> list[tuple[list[str], int]]:
    """(the command's arguments after `python -m sweeper`, the trials it says) per table row."""
    rows = []
    for line in README.read_text().splitlines():
        found = ROW.match(line)
        if found:
            rows.append((shlex.split(found[1])[3:], int(found[2])))
    return rows


def test_the_readme_table_is_found() -> None:
    rows = sweep_rows()
    assert len(rows) == 8 and rows[0] == (["model=rf,lasso", "-m"], 9)


def test_each_command_of_the_sweeps_table_runs_its_trials(workdir: Path) -> None:
    # One working directory for all: later rows reuse the trials earlier ones finished.
    for args, trials in sweep_rows():
        done = run_sweeper(args, cwd=workdir)
        command = " ".join(args)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        # The table's title (log lines, which start with "[", name the sweep too).
        [title] = [line for line in done.stdout.splitlines()
                   if re.search(r"Sweep \S+: ", line) and not line.startswith("[")]  # fmt: skip
        counted = re.search(r"(\d+) trials", title)
        assert counted is not None and int(counted[1]) == trials, f"{command}: {title}"
        assert done.stdout.strip().splitlines()[-1].startswith("Compare the trials: http://")

"""The README's commands, run as written: each row of its "Sweeps" table sweeps the number of
trials the row says, and the quick start's command ends in the table and the compare link; its
`backend=argo` commands write a manifest Argo and Pod Security "restricted" admit."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from support import pod_security
from support.argo import SCHEMA, validate
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
        [title] = [
            line
            for line in done.stdout.splitlines()
            if re.search(r"Sweep \S+: ", line) and not line.startswith("[")
        ]
        counted = re.search(r"(\d+) trials", title)
        assert counted is not None and int(counted[1]) == trials, f"{command}: {title}"
        assert done.stdout.strip().splitlines()[-1].startswith("Compare the trials: http://")


def argo_commands() -> list[list[str]]:
    """The README's grid sweeps on Argo: its code lines `python -m sweeper … backend=argo …`,
    continuation lines joined (an optimiser's batches need a live server: tests/test_argo.py)."""
    commands, current = [], ""
    for line in README.read_text().splitlines():
        text = line.strip()
        if not current and not text.startswith("python -m sweeper "):
            continue
        current += " " + text.removesuffix("\\")
        if not text.endswith("\\"):
            if "backend=argo" in current and "hydra/sweeper" not in current:
                commands.append(shlex.split(current)[3:])
            current = ""
    return commands


def test_the_readme_argo_commands_write_admissible_manifests(workdir: Path) -> None:
    """As written, with the `argo.render_to=sweep.yaml` the README says to add to only write the
    manifest; the last one also as the nightly CronWorkflow of its step 6."""
    commands = argo_commands()
    assert len(commands) == 2 and all("-m" in c and c[-1] != "-m" for c in commands)
    nightly = [*commands[-1], "argo.schedule=0 2 * * *", "argo.timezone=Europe/Berlin"]
    schema = json.loads(SCHEMA.read_text())
    for args, kind in [(c, "Workflow") for c in commands] + [(nightly, "CronWorkflow")]:
        (workdir / "sweep.yaml").unlink(missing_ok=True)
        done = run_sweeper([*args, "argo.render_to=sweep.yaml"], cwd=workdir)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
        assert f"{kind} sweeper-" in done.stdout
        manifest = yaml.safe_load((workdir / "sweep.yaml").read_text())
        assert manifest["kind"] == kind
        validate(manifest, schema)
        assert pod_security.violations(manifest) == []

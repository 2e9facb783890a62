"""The README's and the docs pages' commands, run as written: each row of the "Sweeps" table sweeps
the number of trials the row says, every other local command of the README ends in the table and
the compare link, and the pages' `backend=argo` commands write a manifest Argo and Pod Security
"restricted" admit."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from support import pod_security
from support.argo import EVENTS_SCHEMA, SCHEMA, validate, validate_events
from support.servers import SHARED_DATA, run_sweeper

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
PAGES = sorted((PROJECT / "docs").glob("*.md"))
ROW = re.compile(r"^\| `(python -m sweeper [^`]+)` \| [^|]+ \| (\d+) \|$")


def sweep_rows(page: Path = README) -> list[tuple[list[str], int]]:
    """(the command's arguments after `python -m sweeper`, the trials it says) per table row."""
    rows = []
    for line in page.read_text().splitlines():
        found = ROW.match(line)
        if found:
            rows.append((shlex.split(found[1])[3:], int(found[2])))
    return rows


def test_the_readme_table_is_found_and_is_the_sweeps_page_table() -> None:
    rows = sweep_rows()
    assert len(rows) == 8 and rows[0] == (["model=rf,lasso", "-m"], 9)
    assert sweep_rows(PROJECT / "docs" / "sweeps.md") == rows


def commands(page: Path) -> list[list[str]]:
    """A page's code lines `python -m sweeper …` (continuation lines joined), as arguments after
    `python -m sweeper`."""
    found, current = [], ""
    for line in page.read_text().splitlines():
        text = line.strip()
        if not current and not text.startswith("python -m sweeper "):
            continue
        current += " " + text.removesuffix("\\")
        if not text.endswith("\\"):
            found.append(shlex.split(current)[3:])
            current = ""
    return found


def test_the_readme_commands_run_as_written(tmp_path: Path, workdir: Path) -> None:
    """Its quick start's and "Your own CSV"'s commands, from a folder with `../shared` beside
    it as in a fresh clone: each ends in the table and the compare link."""
    (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    local = [c for c in commands(README) if "backend=argo" not in " ".join(c)]
    assert ["model=rf,lasso", "-m"] in local and any("data=csv" in c for c in local)
    for args in local:
        done = run_sweeper(args, cwd=workdir)
        command = " ".join(args)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        assert done.stdout.strip().splitlines()[-1].startswith("Compare the trials: http://")


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
    """The pages' grid sweeps on Argo (an optimiser's batches need a live server:
    tests/test_argo.py)."""
    every = [c for page in [README, *PAGES] for c in commands(page)]
    return [c for c in every if "backend=argo" in c and not any("hydra/sweeper" in a for a in c)]


def test_the_pages_argo_commands_write_admissible_manifests(workdir: Path) -> None:
    """As written, with the `argo.render_to=sweep.yaml` the Argo page says to add to only write
    the manifest; the nightly page's command renders a CronWorkflow, the production page's (which
    names its own file) a template with its CronWorkflow, trigger and accounts."""
    found = argo_commands()
    assert len(found) == 4 and all("-m" in c and c[-1] != "-m" for c in found)
    schema = json.loads(SCHEMA.read_text())
    events_schema = json.loads(EVENTS_SCHEMA.read_text())
    rendered = []
    for args in found:
        named = [a.removeprefix("argo.render_to=") for a in args if "argo.render_to=" in a]
        target = workdir / (named[0] if named else "sweep.yaml")
        target.unlink(missing_ok=True)
        given = args if named else [*args, "argo.render_to=sweep.yaml"]
        done = run_sweeper(given, cwd=workdir)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-2000:]}"
        documents = list(yaml.safe_load_all(target.read_text()))
        kinds = [d["kind"] for d in documents]
        rendered.append(kinds)
        said = ", ".join(f"{d['kind']} {d['metadata']['name']}" for d in documents)
        assert f"{said} written to {target}" in done.stdout
        for manifest in documents:
            group = manifest["apiVersion"].split("/")[0]
            kind = manifest["kind"]
            if kind in ("EventSource", "Sensor"):
                validate_events(manifest, events_schema)
            elif group == "argoproj.io":
                validate(manifest, schema)
            assert pod_security.violations(manifest) == []
    accounts = ["ServiceAccount", "Role", "RoleBinding"]
    assert sorted(rendered) == sorted(
        [
            ["Workflow"],
            ["Workflow"],
            ["CronWorkflow"],
            ["WorkflowTemplate", "CronWorkflow", "EventSource", "Sensor", *accounts, *accounts],
        ]
    )

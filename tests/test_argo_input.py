"""backend=argo and what a user types: values reach the steps verbatim, never as Argo's own
variables, and paths only this machine can read are refused before a manifest is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser

from support.argo import REMOTE, render
from support.servers import data_file, run_sweeper
from sweeper.planning.definition import Definition


def test_local_paths_are_refused_for_argo(workdir: Path) -> None:
    result = run_sweeper(
        ["model=lasso", "backend=argo", "argo.render_to=x.yaml", "-m"], cwd=workdir
    )
    assert result.returncode != 0
    assert "storage.root=sweeper-store is a local folder" in result.stderr
    local_data = run_sweeper(
        [
            "model=lasso",
            "data=csv",
            f"data.path={data_file('carseats.csv')}",
            "data.target=Sales",
            *REMOTE,
            "backend=argo",
            "argo.render_to=x.yaml",
            "-m",
        ],
        cwd=workdir,
    )
    assert local_data.returncode == 1
    assert f"data.path={data_file('carseats.csv')} is a local file" in local_data.stderr
    assert not (workdir / "x.yaml").exists()


def test_values_reach_the_steps_verbatim_not_as_argo_variables(workdir: Path) -> None:
    """Argo substitutes `{{…}}` anywhere in a template; a value holding one must reach the plan
    step as typed, so the manifest carries the definition encoded, with no brace of its own."""
    typed = ["data.target='{{workflow.name}}'", "mlflow.experiment='{{=sprig.env(\"HOME\")}}'"]
    manifest = render(workdir, ["model=lasso", *REMOTE, *typed, "-m"])
    plan = next(t for t in manifest["spec"]["templates"] if t["name"] == "plan")
    args = plan["container"]["args"]
    encoded = args[args.index("--definition") + 1]
    assert "{" not in encoded and "}" not in encoded
    # Every `{{` left in the manifest is one of its own variables (the metrics' among them: the
    # summary's outputs, the workflow's duration and status), none of the values typed.
    variables = set(re.findall(r"\{\{([^}]*)\}\}", json.dumps(manifest)))
    own = re.compile(
        r"workflow\.(name|duration)|status|item(\.\w+)?|(in|out)puts\.parameters\.\w+"
        r"|tasks\.plan\..*"
    )
    assert variables and all(own.fullmatch(v) for v in variables), variables
    definition = Definition.decoded(encoded)
    parser = OverridesParser.create()
    given = {o.key_or_group: o.value() for o in parser.parse_overrides(list(definition.overrides))}
    assert given["data.target"] == "{{workflow.name}}"
    assert given["mlflow.experiment"] == '{{=sprig.env("HOME")}}'

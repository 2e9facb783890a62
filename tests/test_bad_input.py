"""Bad input ends in one line naming the problem, a non-zero exit, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.servers import S3Server, data_file, free_port, run_sweeper

# (overrides, what the error line must say); {dir} is the working directory.
CASES = {
    "missing file": (["data.path={dir}/nope.csv", "data.target=y"], "does not exist"),
    "empty file": (["data.path={dir}/empty.csv", "data.target=y"], "is empty"),
    "binary junk": (["data.path={dir}/junk.csv", "data.target=y"], "not a readable table"),
    "malformed CSV": (["data.path={dir}/ragged.csv", "data.target=y"],
                      "not a readable table: Error tokenizing data"),
    "missing target": (["data.path={carseats}", "data.target=nope"],
                       "'nope' is not a column; columns: ['Sales'"),
    "text target": (["data.path={carseats}", "data.target=ShelveLoc"],
                    "'ShelveLoc' is not numeric"),
    "all-missing target": (["data.path={dir}/blank_target.csv", "data.target=y"],
                           "'y' is missing in every row"),
    "missing drop column": (["data.path={carseats}", "data.target=Sales", "data.drop=[Sales2]"],
                            "['Sales2']"),
    "no path": ([], "data.path is required"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_data_is_named_in_one_line(workdir: Path, case: str) -> None:
    (workdir / "empty.csv").write_text("")
    (workdir / "junk.csv").write_bytes(bytes(range(256)) * 20)
    (workdir / "blank_target.csv").write_text("x,y\n1,\n2,\n")
    (workdir / "ragged.csv").write_text("x,y\n1,2\n3,4,5,6\n")
    overrides, expected = CASES[case]
    paths = {"dir": workdir, "carseats": data_file("carseats.csv")}
    filled = [o.format(**paths) for o in overrides]
    result = run_sweeper(["data=csv", *filled, "model=lasso", "-m"], cwd=workdir)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (workdir / "sweeper-store" / "preprocess").exists() or not any(
        (workdir / "sweeper-store" / "preprocess").iterdir()
    )


def test_unknown_model_is_named(workdir: Path) -> None:
    result = run_sweeper(["model=nope", "-m"], cwd=workdir)
    assert result.returncode != 0
    assert "Could not find 'model/nope'" in result.stderr


def test_unreachable_tracking_server_fails_fast_with_its_uri(workdir: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_sweeper(["model=lasso", f"mlflow.tracking_uri={uri}", "-m"], cwd=workdir)
    assert result.returncode != 0
    assert f"MLflow at {uri} cannot be reached: Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_bucket_and_unreachable_endpoint_are_named(
    workdir: Path, s3_server: S3Server
) -> None:
    missing = run_sweeper(["model=ridge", "storage.root=s3://no-such-bucket/sweeps", "-m"],
                          cwd=workdir, env=s3_server.env)  # fmt: skip
    assert missing.returncode != 0
    assert (
        "storage.root s3://no-such-bucket/sweeps cannot be used: no-such-bucket does not exist"
        in missing.stderr
    )
    closed = f"http://127.0.0.1:{free_port()}"
    no_endpoint = {**s3_server.env, "AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"}
    unreachable = run_sweeper(
        ["model=ridge", "storage.root=s3://bucket/sweeps", "-m"], cwd=workdir, env=no_endpoint
    )
    assert unreachable.returncode != 0
    assert (
        f'cannot be used: Could not connect to the endpoint URL: "{closed}/bucket"'
        in unreachable.stderr
    )
    data = run_sweeper(
        ["model=ridge", "data=csv", "data.path=s3://bucket/sales.csv", "data.target=y", "-m"],
        cwd=workdir, env=no_endpoint,
    )  # fmt: skip
    assert data.returncode != 0
    assert "data.path s3://bucket/sales.csv cannot be read: Could not connect" in data.stderr
    assert "Traceback" not in missing.stderr + unreachable.stderr + data.stderr

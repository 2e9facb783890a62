"""Hydra finds the project's plugins from an editable install and from a regular (wheel) install."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

from support.servers import PROJECT, run_sweeper

PLUGINS = ("ModelGridSweeper", "SweeperLauncher")


def test_plugins_found_from_this_install(workdir: Path) -> None:
    info = run_sweeper(["--info", "plugins"], cwd=workdir)
    assert all(name in info.stdout for name in PLUGINS), info.stdout


def test_plugins_found_from_a_wheel_install(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(PROJECT)],
        check=True,
    )
    [wheel] = dist.glob("sweeper-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Dependencies from this environment, but not its editable path to the checkout: a line in
    # a .pth file adds a folder without reading the .pth files inside it.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        check=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run(
        [python, "-c", "import sweeper.app as a; print(a.__file__, a.config_dir())"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(PROJECT) not in where and "site-packages/sweeper/conf" in where
    info = subprocess.run(
        [python, "-m", "sweeper", "--info", "plugins"], cwd=work, capture_output=True, text=True
    )
    assert all(name in info.stdout for name in PLUGINS), info.stdout + info.stderr
    sweep = subprocess.run(
        [python, "-m", "sweeper", "model=lasso", "model.alpha=0.1,1", "-m"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert "lasso alpha=0.1" in sweep.stdout and "lasso alpha=1" in sweep.stdout

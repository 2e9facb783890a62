"""The step image, built from docker/Dockerfile with buildah and run with `buildah run`.

No Docker engine runs here and Docker Hub is out of reach, so the Dockerfile's base image
(python:3.11-slim-bookworm) is made first: a Debian bookworm root file system from debootstrap,
shaped like the official image (no EXTERNALLY-MANAGED marker, /usr/local/bin/python, pip trusting
this machine's CA bundle), imported under that name. That recipe lives here, not in the Dockerfile.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE = "docker.io/library/python:3.11-slim-bookworm"
TAG = "localhost/sweeper:test"  # what the tests run pods in
MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _image_exists(name: str) -> bool:
    found = subprocess.run(["buildah", "images", "-q", name], capture_output=True, text=True)
    return found.returncode == 0 and bool(found.stdout.strip())


def ensure_base_image() -> None:
    if _image_exists(BASE):
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "bookworm",
                str(root),
                MIRROR,
            ],
            check=True,
            capture_output=True,
        )
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
        shutil.copy(CA_BUNDLE, root / "etc/ssl/certs/ca-certificates.crt")
        (root / "etc/pip.conf").write_text(f"[global]\ncert = {CA_BUNDLE}\n")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "-", BASE], stdin=tar.stdout, check=True, capture_output=True
        )
        tar.wait()


def build(project: Path, tag: str) -> None:
    ensure_base_image()
    subprocess.run(
        [
            "buildah",
            "build",
            "--isolation",
            "chroot",
            "--pull=never",
            "--layers",
            "-f",
            str(project / "docker" / "Dockerfile"),
            "-t",
            tag,
            str(project),
        ],
        check=True,
        capture_output=True,
    )


class Container:
    """A working container of the image: each pod's command runs in it with its own /tmp."""

    def __init__(self, image: str) -> None:
        self.name = subprocess.run(
            ["buildah", "from", "--pull=never", image], check=True, capture_output=True, text=True
        ).stdout.strip()

    def command(self, argv: list[str], env: dict[str, str], pod_tmp: str) -> list[str]:
        flags = [f"--env={k}={v}" for k, v in env.items()]
        return [
            "buildah",
            "run",
            "--isolation",
            "chroot",
            "-v",
            f"{pod_tmp}:/tmp",
            *flags,
            self.name,
            "--",
            *argv,
        ]

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["buildah", "run", "--isolation", "chroot", self.name, "--", *argv],
            capture_output=True,
            text=True,
        )

    def remove(self) -> None:
        subprocess.run(["buildah", "rm", self.name], capture_output=True)


if __name__ == "__main__":  # `make step-image`: built before the tests, beside the venv's install
    try:
        build(Path(__file__).resolve().parents[2], TAG)
    except subprocess.CalledProcessError as err:
        said = err.stderr.decode(errors="replace") if err.stderr else ""  # captured as bytes
        sys.exit(f"step image: {' '.join(map(str, err.cmd))} failed:\n{said}")

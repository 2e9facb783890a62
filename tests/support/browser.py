"""Headless Chromium (Debian's `chromium`, which `make test` installs), for pages a person opens:
MLflow's compare page, the sweep's HTML report."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    return found


# Headless in a container: no sandbox (root), no GPU (WebGL in software: SwiftShader), nothing
# fetched but the page itself.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1400,1100",
    "--virtual-time-budget=30000",  # let a single-page app fetch and render what it shows
]

# Put first in a copy of the page: every uncaught error, rejected promise and console.error
# the page raises is kept on <html data-errors>, which --dump-dom then shows.
_ERROR_PROBE = """<script>
(function () {
  var seen = [];
  function keep(text) {
    seen.push(String(text));
    document.documentElement.dataset.errors = JSON.stringify(seen);
  }
  window.addEventListener("error", function (e) { keep(e.message || e); });
  window.addEventListener("unhandledrejection", function (e) { keep(e.reason); });
  var error = console.error;
  console.error = function () {
    keep(Array.prototype.join.call(arguments, " "));
    error.apply(console, arguments);
  };
  document.documentElement.dataset.errors = "[]";
})();
</script>"""


@dataclass(frozen=True)
class Rendered:
    dom: str  # the document after its scripts ran
    errors: list[str]  # what the page's scripts raised or logged as errors


def render_file(page: Path, folder: Path) -> Rendered:
    """`page` as Chromium renders it from disk (a copy in `folder`, with the error probe first)."""
    text = page.read_text(encoding="utf-8")
    probed = folder / f"probed-{page.name}"
    probed.write_text(text.replace("<head>", "<head>" + _ERROR_PROBE, 1), encoding="utf-8")
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    marker = 'data-errors="'
    assert marker in done.stdout, "the page's error probe never ran"
    start = done.stdout.index(marker) + len(marker)
    raw = done.stdout[start : done.stdout.index('"', start)]
    errors = json.loads(raw.replace("&quot;", '"').replace("&amp;", "&"))
    return Rendered(done.stdout, errors)

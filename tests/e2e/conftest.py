"""Fixtures for the end-to-end widget tests: one Jupyter server and one browser per session.

Without chromium / the [test] extras / the built JS these tests are skipped, unless
SW_E2E_REQUIRED=1 (set by `make test`), where a missing piece is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab_harness import CHROMIUM, jupyter_server, launch_chromium

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out" / "e2e"  # gitignored: screenshots, timings, the saved-state HTML
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
REQUIREJS = "requirejs@2.3.8"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: drives a real JupyterLab / Notebook 7 in chromium")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    for module in ("playwright", "jupyterlab", "notebook", "nbconvert", "ipykernel", "marimo"):
        if importlib.util.find_spec(module) is None:
            return f"python package {module!r} is missing (pip install -e '.[test]')"
    if not (REPO / "saliency_widgets" / "static" / "widget.js").exists():
        return "the widget's JS is not built (cd js && npm ci && npm run build)"
    return None


@pytest.fixture(scope="session", autouse=True)
def _e2e_prerequisites() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("SW_E2E_REQUIRED") == "1":
        pytest.fail(f"end-to-end prerequisites missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def out_dir() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT


@pytest.fixture(scope="session")
def server():
    with jupyter_server() as started:
        yield started


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def embed_assets(out_dir: Path) -> dict[str, Path]:
    """What nbconvert's HTML loads from CDNs, served locally (the test machine is offline):
    the widget HTML manager and require.js from npm (``npm pack``, cached), anywidget's AMD
    module from the installed Python package."""
    cache = out_dir / "assets"
    cache.mkdir(exist_ok=True)
    wanted = {"embed-amd.js": (HTML_MANAGER, "package/dist/embed-amd.js"),
              "require.js": (REQUIREJS, "package/require.js")}
    for name, (spec, member) in wanted.items():
        target = cache / name
        if target.exists():
            continue
        tgz = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(cache)],
                             check=True, capture_output=True, text=True,
                             timeout=300).stdout.strip().splitlines()[-1]
        with tarfile.open(cache / tgz) as tar:
            target.write_bytes(tar.extractfile(member).read())
    amd = Path(sys.prefix) / "share" / "jupyter" / "nbextensions" / "anywidget" / "index.js"
    if not amd.exists():
        raise FileNotFoundError(f"anywidget's AMD module (for the HTML export) not found at {amd}")
    return {"embed-amd.js": cache / "embed-amd.js", "require.js": cache / "require.js",
            "anywidget.js": amd}

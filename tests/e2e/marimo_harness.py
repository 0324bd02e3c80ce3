"""Serve a marimo notebook as an app (``marimo run --headless``) for the browser tests.

marimo renders each anywidget inside an open shadow root, so the tests find the widget with
Playwright locators (they pierce shadow roots), never with ``document.querySelector``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from lab_harness import _free_port, serve


@contextlib.contextmanager
def marimo_app(notebook: Path, timeout: float = 120.0) -> Iterator[str]:
    """Yield the URL of ``notebook`` served by ``marimo run``; its kernel gets one thread."""
    tmp = Path(tempfile.mkdtemp(prefix="sw-marimo-"))
    app = tmp / notebook.name
    shutil.copy(notebook, app)
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               MARIMO_SKIP_UPDATE_CHECK="1", HOME=str(tmp))
    marimo = str(Path(sys.executable).with_name("marimo"))
    cmd = [marimo, "run", str(app), "--headless", "--host", "127.0.0.1", "--port", str(port),
           "--no-token"]
    url = f"http://127.0.0.1:{port}/"
    try:
        with serve(cmd, env, url, tmp / "marimo.log", timeout, cwd=tmp):
            yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Serve a marimo notebook as an app (``marimo run --headless``) for the browser tests.

marimo renders each anywidget inside an open shadow root, so the tests find the widget with
Playwright locators (they pierce shadow roots), never with ``document.querySelector``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from lab_harness import _free_port


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
    log_path = tmp / "marimo.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([marimo, "run", str(app), "--headless", "--host", "127.0.0.1",
                             "--port", str(port), "--no-token"], cwd=tmp, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError("marimo exited:\n" + log_path.read_text())
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError("marimo did not start:\n" + log_path.read_text())
            time.sleep(0.25)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)

"""Drive a real, isolated JupyterLab 4 / Notebook 7 with Playwright and Debian's chromium.

One server per test session (``jupyter lab`` serves Notebook 7 too), token-less on 127.0.0.1,
with every Jupyter directory inside a temporary folder; it is stopped by killing its own process
group only. Cells are driven through ``window.jupyterapp`` (``--expose-app-in-browser``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def notebook(cells: list[str]) -> dict[str, Any]:
    """An nbformat notebook. The kernelspec is required: without it Lab asks for a kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _write_settings(settings: Path) -> None:
    files = {
        # no news toast, no update check (they would cover screenshots)
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        # saving a notebook stores the widget state: the saved notebook shows the widget
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    }
    for name, value in files.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


@contextlib.contextmanager
def jupyter_server(timeout: float = 120.0) -> Iterator[tuple[str, Path, Path]]:
    """Yield ``(base_url, root_dir, log_file)`` of a fresh server; the kernel gets one thread."""
    tmp = Path(tempfile.mkdtemp(prefix="sw-e2e-"))
    root = tmp / "nb"
    root.mkdir()
    _write_settings(tmp / "settings")
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), IPYTHONDIR=str(tmp / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        # the kernel computes on one thread so the browser keeps a core
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
        MPLBACKEND="Agg",
    )
    env.pop("ANYWIDGET_HMR", None)
    port = _free_port()
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    cmd = [jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           "--ServerApp.terminals_enabled=False", "--expose-app-in-browser",
           "--JupyterNotebookApp.expose_app_in_browser=True"]
    base = f"http://127.0.0.1:{port}"
    try:
        with serve(cmd, env, f"{base}/api/status", tmp / "jupyter.log", timeout):
            yield base, root, tmp / "jupyter.log"
    finally:
        if os.environ.get("KEEP_E2E_TMP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], probe: str, log_path: Path,
          timeout: float = 120.0, cwd: Path | None = None) -> Iterator[None]:
    """Run a server in its own process group until ``probe`` answers 200; stop it afterwards
    by killing that group only (the server and its kernels)."""
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n" + log_path.read_text())
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(probe, timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{cmd[0]} did not start:\n" + log_path.read_text())
            time.sleep(0.25)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      chromium_sandbox=False, args=CHROMIUM_ARGS)


# -- notebook driving through window.jupyterapp ---------------------------------------------------
JS_READY = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.context) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && w.context.isReady;
}"""

JS_SET_AND_RUN = """async ([i, source]) => {
  const app = window.jupyterapp; const nb = app.shell.currentWidget;
  const cell = nb.content.widgets[i];
  if (source !== null) cell.model.sharedModel.setSource(source);
  cell.model.executionCount = null;
  nb.content.activeCellIndex = i;
  await app.commands.execute('notebook:run-cell');
}"""

JS_CELL_DONE = """(i) => {
  const nb = window.jupyterapp.shell.currentWidget;
  const c = nb.content.widgets[i];
  return c.model.executionCount !== null && !c.hasClass('jp-mod-running')
      && nb.sessionContext.session.kernel.status === 'idle';
}"""

JS_CELL_STARTED = """(i) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const prompt = c.promptNode ? c.promptNode.textContent : '';
  return c.model.executionCount !== null || c.hasClass('jp-mod-running') || prompt.includes('*');
}"""

JS_CELL_STATE = """(i) => {
  const nb = window.jupyterapp.shell.currentWidget; const c = nb.content.widgets[i];
  const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
  return {prompt: c.promptNode ? c.promptNode.textContent : null,
          executionCount: c.model.executionCount, kernel: k ? k.status : null,
          outputs: JSON.stringify(c.model.outputs.toJSON()).slice(0, 2000)};
}"""

JS_CELL_TEXT = """(i) => {
  const nb = window.jupyterapp.shell.currentWidget;
  return nb.content.widgets[i].model.outputs.toJSON().map(o => o.text ? [].concat(o.text).join('')
      : o.ename ? ('ERROR ' + o.ename + ': ' + o.evalue) : '').join('');
}"""

JS_CELL_COUNT = "() => window.jupyterapp.shell.currentWidget.content.widgets.length"


class NotebookPage:
    """A notebook open in the browser; ``run`` executes a cell and returns its text output."""

    def __init__(self, page: Any, url: str, timeout_ms: float = 180_000) -> None:
        self.page = page
        page.goto(url)
        page.wait_for_function(JS_READY, timeout=timeout_ms, polling=250)

    def run(self, index: int, source: str | None = None, timeout_ms: float = 180_000) -> str:
        # Right after a page opens, Lab's notebook tracker may not follow the new notebook yet
        # and 'notebook:run-cell' then runs nothing (seen once in CI: a cell waited 300 s with
        # no prompt). A cell that has not started is safe to ask again.
        for attempt in range(4):
            self.page.evaluate(JS_SET_AND_RUN, [index, source])
            try:
                self.page.wait_for_function(JS_CELL_STARTED, arg=index, timeout=10_000,
                                            polling=100)
                break
            except Exception as e:
                if attempt == 3:
                    raise AssertionError(
                        f"cell {index} never started: {self._where(index)}") from e
        try:
            self.page.wait_for_function(JS_CELL_DONE, arg=index, timeout=timeout_ms, polling=100)
        except Exception as e:
            raise AssertionError(f"cell {index} did not finish: {self._where(index)}") from e
        text = self.page.evaluate(JS_CELL_TEXT, index)
        if "ERROR " in text:
            raise AssertionError(f"cell {index} failed:\n{text}")
        return text

    def _where(self, index: int) -> str:
        """The cell's prompt, the kernel's status and its output so far, for a failure message."""
        try:
            return str(self.page.evaluate(JS_CELL_STATE, index))
        except Exception as e:  # the page itself may be gone
            return f"(page unreadable: {e})"

    def python(self, code: str, index: int | None = None) -> str:
        """Run ``code`` in the last cell (the scratch cell) and return its printed output."""
        if index is None:
            index = self.page.evaluate(JS_CELL_COUNT) - 1
        return self.run(index, code)

    def poll_python(self, code: str, ok: Any, timeout: float = 60.0) -> Any:
        """Re-run ``code`` (which prints one JSON value) until ``ok(value)``: comm updates from
        the browser reach the kernel asynchronously, so one read can be too early."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.python(code)
            value = json.loads(out.strip().splitlines()[-1])
            if ok(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"python state never satisfied the check; last: {value!r}")
            time.sleep(0.3)

    def save(self) -> None:
        self.page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        self.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=60_000)


# --- the widget on the page ---------------------------------------------------------------

ROOT = ".saliency-widget"


def panel_canvas(method: str) -> str:
    return f"{ROOT} [data-testid=panel][data-method={method}] canvas"


JS_SNAPSHOT = """([sel, name]) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  (window.__snaps = window.__snaps || {})[name] = d.slice();
  const colours = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return {w: c.width, h: c.height, colours: colours.size, drawn: c.dataset.drawn || null};
}"""

JS_DIFF = """([a, b]) => {
  const x = window.__snaps[a], y = window.__snaps[b];
  if (!x || !y || x.length !== y.length) return -1;
  let n = 0; for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
  return n;
}"""


def wait_drawn(page, method: str, not_id: str | None = None, timeout: float = 120_000) -> str:
    """Wait until the method's canvas shows a computed map (other than ``not_id``)."""
    page.wait_for_function(
        """([sel, old]) => { const c = document.querySelector(sel);
             return !!c && !!c.dataset.drawn && c.dataset.drawn !== old; }""",
        arg=[panel_canvas(method), not_id], timeout=timeout, polling=50)
    return page.locator(panel_canvas(method)).get_attribute("data-drawn")


@contextlib.contextmanager
def notebook_page(browser: Any, url: str, *, width: int = 1400, height: int = 1100,
                  keep: Any = None) -> Iterator[NotebookPage]:
    """A fresh browser context with the notebook at ``url`` open; yields its ``NotebookPage``.

    ``page.errors`` collects the page's uncaught errors (only those ``keep(error)`` accepts, if
    given). Afterwards the notebook's kernel is shut down and the context closed.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack or ''}")
                if keep is None or keep(e) else None)
        nb = NotebookPage(page, url)
        nb.errors = errors
        try:
            yield nb
        finally:
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        context.close()

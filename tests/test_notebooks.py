"""Every notebook in notebooks/ executes headless from top to bottom (so they cannot rot)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # leave the other core to the rest of the suite
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "Traceback" not in text


def _pretrained_cells() -> dict[str, str]:
    cells = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        found = [c.source for c in nb.cells
                 if c.cell_type == "code" and "ResNet50_Weights" in c.source]
        if found:
            cells[path.stem] = found[-1]
    return cells


def test_the_pretrained_cell_runs_when_weights_are_on_disk(tmp_path, monkeypatch):
    """Each demo notebook ends with a cell that uses a torchvision ImageNet model, only when its
    weights are already on disk (nothing is downloaded). A randomly initialised ResNet-50 saved
    where torch.hub looks stands in for the real weights, so the cell's code really runs."""
    import torch
    import torchvision

    import saliency_widgets as sw

    cells = _pretrained_cells()
    demo = [p.stem for p in NOTEBOOKS if p.stem[:2] in ("01", "02", "03", "04")]
    assert sorted(cells) == sorted(demo) and len(demo) == 4, (sorted(cells), demo)
    source = cells[demo[0]]
    # the cell text is the same in every notebook (only the `data` before it differs)
    assert all(source in text for text in cells.values())

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    path = tmp_path / "hub" / "checkpoints" / Path(weights.url).name
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), path)
    scope = {"sw": sw, "data": sw.demo.sample(1, seed=0)}
    exec(compile(source, "pretrained-cell", "exec"), scope)
    w = scope["imagenet"]
    try:
        assert w.wait(timeout=300)
        assert w.display_image.shape == (224, 224, 3)  # resized and cropped by the transforms
        assert w.normalization[0] == pytest.approx((0.485, 0.456, 0.406))
        assert [a.method for a in w.attributions] == ["grad_cam", "gradient"]
        assert all(a.values.shape[-2:] == (224, 224) for a in w.attributions)
        assert w.target == int(w.attributions[0].target[0])
    finally:
        w.close()


MARIMO = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*_marimo.py"))


@pytest.mark.parametrize("path", MARIMO, ids=lambda p: p.stem)
def test_marimo_notebook_runs_as_a_script(path, tmp_path):
    """A marimo notebook is a Python file: run as a script, marimo executes every cell."""
    import subprocess
    import sys

    pytest.importorskip("marimo")
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg", HOME=str(tmp_path))
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, timeout=600,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]

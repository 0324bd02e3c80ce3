"""The widget in a real kernel without a browser (nbclient): sw.show displays exactly once, and
the notebook's stored widget state holds the computed panels as binary buffers."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from lab_harness import notebook

pytestmark = pytest.mark.e2e

CELLS = [
    r'''
import os, numpy as np, torch, saliency_widgets as sw
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                            torch.nn.Flatten(), torch.nn.Linear(4, 5)).eval()
image = (np.arange(32 * 48 * 3) % 251).astype(np.uint8).reshape(32, 48, 3)
''',
    'w = sw.show(model, image, methods=("gradient", "grad_cam"))',   # assigned: shown by show()
    'sw.show(model, image, methods=("gradient",))',                  # last expression: once too
    'print(w.wait(60), w.status, [p.state for p in w.panels])',
]


def test_show_displays_once_and_the_stored_state_has_the_maps(tmp_path):
    from nbclient import NotebookClient

    nb = notebook(CELLS)
    NotebookClient(nb, kernel_name="python3", timeout=300, store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    views = [[o for o in cell.outputs if "application/vnd.jupyter.widget-view+json"
              in o.get("data", {})] for cell in nb.cells]
    assert [len(v) for v in views] == [0, 1, 1, 0]
    assert nb.cells[3].outputs[0]["text"].strip() == "True idle ['ready', 'ready']"
    model_id = views[1][0]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    states = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    saved = states[model_id]
    state = saved["state"]
    assert state["methods_selected"] == ["gradient", "grad_cam"]
    buffers = {tuple(b["path"]): base64.b64decode(b["data"]) for b in saved["buffers"]}
    image = np.frombuffer(buffers[("image", "view")], np.uint8).reshape(32, 48, 3)
    assert image[0, 0].tolist() == [0, 1, 2]  # the picture, byte for byte
    # each panel is a child model of its own, saved with its maps
    panels = [states[ref.removeprefix("IPY_MODEL_")] for ref in state["panels"]]
    assert [p["state"]["method"] for p in panels] == ["gradient", "grad_cam"]
    assert [p["state"]["state"] for p in panels] == ["ready", "ready"]
    for panel in panels:
        maps = {tuple(b["path"]): base64.b64decode(b["data"]) for b in panel["buffers"]}
        signed = np.frombuffer(maps[("signed", "view")], np.float32)
        assert signed.size == 32 * 48 and np.abs(signed).max() > 0

"""The README's demo figures come from docs/demo_figures.json (scripts/demo_figures.py), and that
record is what the current code and bundled weights give: re-measured here (the deterministic
part; the retraining figures take minutes and are checked by their own bit-for-bit flag)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import saliency_widgets as sw

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def record():
    with open(ROOT / "docs" / "demo_figures.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def script():
    from script_loader import load_script

    return load_script("demo_figures")


def _close(a, b, path=""):
    """Equal structures; floats to 1e-4 (thread count may reorder float32 sums)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-4), path
    else:
        assert a == b, path


def test_committed_figures_are_what_the_current_code_gives(record, script):
    clean, hans = sw.demo.load_model("shapes"), sw.demo.load_model("shapes_clever_hans")
    _close(script.clean_model(clean), record["clean"], "clean")
    _close(script.shortcut(hans, clean), record["shortcut"], "shortcut")


def test_the_readme_quotes_the_committed_figures(record):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    c, h, r = record["clean"], record["shortcut"], record["retrain"]
    s0 = r["shapes_clever_hans_seed0"]
    quoted = [f"{c['accuracy']:.1%} accuracy",
              f"for {c['grad_cam']['pointing']:.0%} and puts {c['grad_cam']['mass']:.0%}",
              f"IG (16 steps): {c['integrated_gradients']['pointing']:.0%} and "
              f"{c['integrated_gradients']['mass']:.0%}",
              f"(a uniform map: {c['mask_share']:.0%})",
              f"It calls {h['flip_rate']:.1%} of",
              f"puts {h['grad_cam_box']['mass']:.1%} of its mass",
              f"({h['box_share']:.1%} of the image)",
              f"({s0['flip_rate']:.0%} flips)",
              f"about {s0['grad_cam_box']['mass']:.0%} of its mass in the box",
              f"about {r['shapes']['seconds']:.0f} s on 2 idle cores"]
    for text in quoted:
        assert text.replace("%", " %") in readme.replace("\n  ", " ").replace("\n", " "), text
    assert r["shapes"]["bit_for_bit"] and r["shapes_clever_hans"]["bit_for_bit"]

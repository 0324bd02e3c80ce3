"""``sw.agreement`` (maps against masks, no model) equals ``sw.evaluate``; the top-k IoU metric.

About 1 s: eight demo images, three methods.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import saliency_widgets as sw
from saliency_widgets.errors import SaliencyError

try:
    from .models import linear_model
except ImportError:  # tests/ is not a package: pytest puts it on sys.path
    from models import linear_model

F64 = torch.float64


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b))) and \
        bool(torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))


def test_agreement_equals_evaluate_on_the_demo():
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(8, seed=3)
    masks = data.masks.clone()
    masks[5] = False  # an empty mask: NaN in both, with a warning
    attrs = {m: sw.attribute(model, data.x, method=m)
             for m in ("gradient", "grad_cam", "input_x_gradient")}
    with pytest.warns(sw.SaliencyWarning, match="mask is empty"):
        got = sw.agreement(attrs, masks)
    assert list(got) == list(attrs)
    for method, attr in attrs.items():
        assert list(got[method]) == ["pointing_game", "relevance_mass", "relevance_rank",
                                     "top_k_iou"]
        for metric, res in got[method].items():
            with pytest.warns(sw.SaliencyWarning, match="mask is empty"):
                ref = sw.evaluate(model, data.x, attr, metric=metric, masks=masks)
            assert same(res.scores, ref.scores), f"{method}/{metric}: {res.scores} vs {ref.scores}"
            assert dict(res.params) == dict(ref.params) and res.metric == ref.metric
            assert res.higher_is_better is ref.higher_is_better
            assert torch.isnan(res.scores[5]) and not torch.isnan(res.scores[:5]).any()
    # plain tensors, a numpy mask, parameters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sw.SaliencyWarning)  # the empty mask, as above
        one = sw.agreement(attrs["grad_cam"].values, masks.numpy(),
                           metrics={"top_k_iou": {"top_k": 0.05},
                                    "pointing_game": {"tolerance": 0}})
        ref = sw.evaluate(model, data.x, attrs["grad_cam"], metric="top_k_iou", masks=masks,
                          top_k=0.05)
    assert list(one) == ["top_k_iou", "pointing_game"] and same(one["top_k_iou"].scores,
                                                                ref.scores)
    assert one["pointing_game"].params["tolerance"] == 0


def test_one_mask_for_every_example_and_errors():
    values = torch.zeros(3, 1, 4, 4, dtype=F64)
    values[:, 0, 1, 2] = 1.0
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[1, 2] = True
    r = sw.agreement(values, mask, metrics=["pointing_game", "relevance_mass"])
    assert r["pointing_game"].scores.tolist() == [1.0] * 3
    assert r["relevance_mass"].scores.tolist() == [1.0] * 3
    with pytest.raises(SaliencyError, match="localization metrics only"):
        sw.agreement(values, mask, metrics=["deletion"])
    with pytest.raises(SaliencyError, match=r"must be \(3, 4, 4\) or \(4, 4\)"):
        sw.agreement(values, mask[:3])
    with pytest.raises(SaliencyError, match="must be bool"):
        sw.agreement(values, mask.float())
    with pytest.raises(SaliencyError, match="single string"):
        sw.agreement(values, mask, metrics="top_k_iou")
    with pytest.raises(SaliencyError, match="unknown parameter"):
        sw.agreement(values, mask, metrics={"top_k_iou": {"fraction": 0.1}})


def test_top_k_iou_closed_form():
    model = linear_model(1, 5, 4, 2)
    x = torch.zeros(2, 1, 5, 4, dtype=F64)
    values = torch.arange(40, dtype=F64).view(2, 1, 5, 4).flip(-1).flip(-2)  # largest first
    masks = torch.zeros(2, 5, 4, dtype=torch.bool)
    masks[0, 0, :2] = True  # the top 2 pixels exactly: IoU 1 at top_k = 2/20
    masks[1, 0, 1:] = True  # 3 pixels; the top 2 are pixels 0 and 1 → ∩ 1, ∪ 4
    r = sw.evaluate(model, x, values, target=0, metric="top_k_iou", masks=masks, top_k=0.1)
    assert r.scores.tolist() == [1.0, 0.25]
    r = sw.evaluate(model, x, values, target=0, metric="top_k_iou", masks=masks, top_k=1.0)
    assert r.scores.tolist() == [2 / 20, 3 / 20]
    for bad in (0, 1.5, True):
        with pytest.raises(SaliencyError, match="top_k must be a fraction"):
            sw.evaluate(model, x, values, target=0, metric="top_k_iou", masks=masks, top_k=bad)
    assert np.isclose(sw.evaluate(model, x, values, target=0, metric="top_k_iou",
                                  masks=masks).params["top_k"], 0.1)

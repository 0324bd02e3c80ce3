"""RISE against its exact expectation: every mask of a 2×2 or 3×3 grid at every integer shift.

RISE's map is a Monte Carlo estimate of ``E[f(x_M) · M] / keep`` over its mask distribution. On
a coarse grid that distribution is finite (``2^(s²)`` grids, each with its Bernoulli
probability, times ``cell²`` equally likely shifts), so the expectation and the per-pixel
variance are exact sums. With 10⁴ masks every pixel of the map must lie within 4 standard
errors of the expectation (a seed fixed once; a biased sampler or a wrong normalisation fails by
tens of standard errors).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import saliency_widgets as sw
from saliency_widgets.methods.rise import rise_masks

from models import smooth_cnn

F64 = torch.float64
SIZE = 12


def exact_moments(model, x, target, contrast, grid, keep, baseline=0.0):
    """``(E, Var)`` of ``f(x_M)·M/keep`` per pixel, over every grid and shift."""
    cells = grid * grid
    cell = math.ceil(SIZE / grid)
    grids = torch.tensor(list(itertools.product([0.0, 1.0], repeat=cells)), dtype=F64)
    on = grids.sum(1)
    p_grid = keep ** on * (1 - keep) ** (cells - on)
    shifts = torch.tensor(list(itertools.product(range(cell), range(cell))))
    g = grids.view(-1, grid, grid).repeat_interleave(len(shifts), 0)
    s = shifts.repeat(len(grids), 1)
    weight = (p_grid.repeat_interleave(len(shifts)) / len(shifts)).view(-1, 1, 1, 1)
    masks = rise_masks(g, s, SIZE, SIZE)
    with torch.no_grad():
        out = model(baseline + masks * (x - baseline))
    f = out[:, target] - out[:, contrast]
    v = f.view(-1, 1, 1, 1) * masks / keep
    mean = (weight * v).sum(0)
    return mean, (weight * v * v).sum(0) - mean * mean


@pytest.mark.parametrize("grid, keep, baseline", [(2, 0.5, 0.0), (3, 0.3, -0.5)])
def test_rise_converges_to_the_brute_force_expectation(grid, keep, baseline):
    model = smooth_cnn(c=3, k=4, act="softplus", seed=31)
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(32), dtype=F64)
    mean, var = exact_moments(model, x, 1, 0, grid, keep, baseline)
    n = 10_000
    a = sw.attribute(model, x, 1, contrast=0, method="rise", samples=n, grid=grid, keep=keep,
                     baseline=baseline, seed=0)
    z = ((a.values[0] - mean) / (var / n).sqrt()).abs().max()
    assert z < 4, f"RISE is {z:.2f} standard errors from its exact expectation (limit 4)"
    # the negative control: the same estimate without the 1/keep normalisation is far off
    z_bad = ((a.values[0] * keep - mean) / (var / n).sqrt()).abs().max()
    assert z_bad > 20


def test_rise_with_every_cell_kept_is_the_objective_everywhere():
    model = smooth_cnn(c=3, k=4, seed=33)
    x = torch.randn(2, 3, 12, 20, generator=torch.Generator().manual_seed(34), dtype=F64)
    a = sw.attribute(model, x, [1, 2], contrast=[0, 0], method="rise", samples=7, keep=1.0)
    with torch.no_grad():
        out = model(x)
    f = (out[:, [1, 2]].diagonal() - out[:, 0]).view(2, 1, 1, 1)
    torch.testing.assert_close(a.values, f.expand(2, 1, 12, 20), rtol=1e-14, atol=1e-14)


def test_rise_masks_upsample_the_grid_and_crop_at_the_shift():
    grid = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    at0 = rise_masks(grid, torch.tensor([[0, 0]]), 8, 8)[0, 0]  # cells of 4 px, 12 px canvas
    assert at0.shape == (8, 8)
    assert float(at0.min()) >= 0 and float(at0.max()) <= 1
    # bilinear with pixel centres aligned: pixel 7 samples the grid at (7.5·2/12 − ½) = 0.75
    corners = torch.stack([at0[0, 0], at0[0, 7], at0[7, 7]])
    torch.testing.assert_close(corners, torch.tensor([1.0, 0.25, 0.25 ** 2 + 0.75 ** 2],
                                                     dtype=F64), rtol=0, atol=1e-15)
    assert torch.equal(at0, at0.T)  # the diagonal grid is symmetric
    shifted = rise_masks(grid, torch.tensor([[3, 1]]), 8, 8)[0, 0]
    canvas = F.interpolate(grid[None], size=(12, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(shifted, canvas[0, 0, 3:11, 1:9], rtol=0, atol=0)


def test_rise_rejects_a_bad_keep():
    model, x = smooth_cnn(seed=1), torch.zeros(1, 3, 8, 8, dtype=F64)
    for bad in (0, 1.5, "half"):
        with pytest.raises(sw.SaliencyError, match=r"keep.*\(0, 1\]"):
            sw.attribute(model, x, method="rise", keep=bad, samples=2)

"""Blur integrated gradients (Xu, Venugopalan, Sundararajan 2020, arXiv:2004.03383).

Integrates the gradient along a path that blurs the image with a Gaussian of growing σ:
``attr = −Σ_k Δσ · ∂x(σ_k)/∂σ ⊙ ∇f(x(σ_k))`` for ``σ_k = k·max_sigma/steps``, ``k = 0…steps−1``
(a left Riemann sum), with ``∂x/∂σ`` the forward difference ``(x(σ + grad_step) − x(σ)) /
grad_step``, as PAIR ``saliency`` 0.2.1 computes it. ``Σ attr ≈ f(x) − f(x(max_sigma))``; the gap
is in ``extras["completeness_gap"]``.

The blur is scipy's ``gaussian_filter`` with ``mode="constant"`` (PAIR's): kernel radius
``⌊4σ + ½⌋``, weights normalised over the whole kernel, zeros outside the image. We apply it
exactly, as two banded matrices (rows, columns), batched over path points on the model's device.
With ``normalization`` the blur acts on pixels (black outside the image), as when PAIR is handed
the raw image; without it, on the input as given.

Defaults: PAIR's 100 steps and ``grad_step`` 0.01; ``max_sigma`` PAIR's 50 px at 224 px, scaled
with the longer side (so the end point is equally blurred at any size). PAIR's ``sqrt=True``
spacing (σ_k = √(k·max_sigma/steps), which ends at √max_sigma) is not offered.
"""

from __future__ import annotations

import torch

from ..checks import positive, positive_int
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores, over_batch


def blur_matrices(sigmas: torch.Tensor, n: int) -> torch.Tensor:
    """``(k, n, n)``: row ``i`` of matrix ``s`` is the zero-padded Gaussian of σ = ``sigmas[s]``
    centred on pixel ``i`` (scipy's truncation at ``⌊4σ + ½⌋``; σ = 0 gives the identity)."""
    sigmas = sigmas.to(torch.float64)
    radius = torch.floor(4.0 * sigmas + 0.5)
    d = torch.arange(n, dtype=torch.float64, device=sigmas.device)
    d = (d[:, None] - d[None, :])[None]  # (1, n, n) signed offsets
    # scipy's exp(−½/σ² · d²); σ = 0 has radius 0, and its clamp keeps the centre tap 1, not NaN
    c = (-0.5 / sigmas.clamp(min=1e-150) ** 2).view(-1, 1, 1)
    phi = torch.where(d.abs() <= radius.view(-1, 1, 1), torch.exp(c * (d * d)), 0.0)
    # normalised over the whole kernel, including taps that fall outside the image
    t = torch.arange(int(radius.max()) + 1, dtype=torch.float64, device=sigmas.device)
    taps = torch.where(t[None] <= radius[:, None], torch.exp(c.view(-1, 1) * (t * t)), 0.0)
    norm = 2 * taps.sum(1) - 1  # the centre tap (1) counted once
    return phi / norm.view(-1, 1, 1)


def _blur(pixels: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ pixels @ colsᵀ`` per path point: pixels ``(k, C, H, W)``, matrices ``(k, ·, ·)``."""
    return rows[:, None] @ pixels @ cols[:, None].transpose(-1, -2)


@method(label="Blur IG", family="path", output="input", derivative="surrogate",
        validators={"steps": positive_int, "max_sigma": positive.or_none(), "grad_step": positive})
def blur_ig(ctx: Explainee, x: torch.Tensor, *, steps: int = 100,
            max_sigma: float | None = None, grad_step: float = 0.01) -> torch.Tensor:
    """Gradients integrated along a path from the input to a Gaussian-blurred copy of it."""
    B, C, H, W = x.shape
    if max_sigma is None:
        max_sigma = 50.0 * max(H, W) / 224
    ctx.resolve_param("max_sigma", float(max_sigma))
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    if ctx.normalization is not None:  # blur pixels, so the border outside the image is black
        mean, std = (t.to(acc_dtype) for t in ctx.normalization)
    else:
        mean = torch.zeros((1, C, 1, 1), dtype=acc_dtype, device=x.device)
        std = torch.ones_like(mean)
    pixels = x.to(acc_dtype) * std + mean
    dsigma = float(max_sigma) / steps
    sigmas = torch.arange(steps, dtype=torch.float64, device=x.device) * dsigma

    def path(rows: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
        blurred = _blur(pixels[rows], blur_matrices(sig, H).to(acc_dtype),
                        blur_matrices(sig, W).to(acc_dtype))
        return (blurred - mean) / std

    f_x = original_scores(ctx, x)
    acc = torch.zeros_like(x, dtype=acc_dtype)

    def step(i: int, j: int) -> None:
        t = torch.arange(i, j, device=x.device)
        rows, sig = t // steps, sigmas[t % steps]
        point = path(rows, sig)
        slope = (path(rows, sig + grad_step) - point) / grad_step
        _, g = ctx.input_grad(point.to(x.dtype), rows)
        g = g.to(acc_dtype) * slope * dsigma
        for r, b in enumerate(rows.tolist()):  # step order per example: chunking cannot matter
            acc[b] += g[r]

    ctx.work.run(B * steps, step, item_numel=x[0].numel(), kind="backward")
    end = path(torch.arange(B, device=x.device),
               torch.full((B,), float(max_sigma), dtype=torch.float64, device=x.device))
    (f_end,) = over_batch(ctx, end.to(x.dtype), lambda b, rows: (ctx.scores(b, rows),),
                          kind="forward", report=False)
    attr = -acc
    ctx.note("completeness_gap", (attr.flatten(1).sum(1) - (f_x - f_end)).detach())
    return attr

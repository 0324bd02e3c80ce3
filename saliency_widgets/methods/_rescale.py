"""DeepLIFT's pass over (example, reference) pairs, shared by ``deeplift`` and ``deeplift_shap``."""

from __future__ import annotations

from typing import cast

import torch

from ..model.deeplift import DeepLiftMode
from ..model.explainee import Explainee


def rescale_mean(ctx: Explainee, x: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
    """Return the mean over references of ``(x − r) ⊙ m(x, r)``; ``refs`` is ``(P, R, C, H, W)``
    with ``P = 1`` (shared by the batch) or ``P = B`` (one set per example).

    Each (example, reference) pair is two rows of one forward pass. The record's extras get the
    ``summation_gap`` ``Σ attribution − mean_r (f(x) − f(r))`` per example (zero up to rounding
    on networks whose nonlinearities DeepLIFT knows).
    """
    B, R = x.shape[0], refs.shape[1]
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    acc = torch.zeros_like(x, dtype=acc_dtype)
    delta = torch.zeros(B, dtype=acc_dtype, device=x.device)

    def step(i: int, j: int) -> None:
        ex = [t // R for t in range(i, j)]
        t = torch.arange(i, j, device=x.device)  # on the device: no host-to-device wait
        rows, which = t // R, t % R
        xb = x[rows]
        rb = refs[rows if refs.shape[0] > 1 else torch.zeros_like(rows), which]
        s, s_ref, m = ctx.input_grad_under(xb, rows, mode=DeepLiftMode(len(ex)), reference=rb,
                                           original=True)
        s_ref = cast(torch.Tensor, s_ref)  # scored whenever a reference is given
        part = (xb.to(acc_dtype) - rb.to(acc_dtype)) * m.to(acc_dtype)
        change = (s - s_ref).to(acc_dtype)
        for r, b in enumerate(ex):  # reference order per example: independent of chunking
            acc[b] += part[r]
            delta[b] += change[r]

    ctx.work.run(B * R, step, item_numel=2 * x[0].numel(), kind="backward")
    attr = acc / R
    ctx.note("summation_gap", (attr.flatten(1).sum(1) - delta / R).detach())
    return attr

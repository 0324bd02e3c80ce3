"""GradientSHAP / expected gradients (Lundberg & Lee 2017, arXiv:1705.07874; Erion et al. 2021,
arXiv:1906.10670).

``E[(x̃ − r) ⊙ ∇f(α·x̃ + (1 − α)·r)]`` over a reference ``r`` drawn from the set, ``α ~ U(0, 1)``
and ``x̃ = x + ε``, ``ε ~ N(0, σ²)`` with σ = ``noise`` × (max − min) of each example (0: expected
gradients proper), estimated from ``samples`` draws (Captum's formula, its noise given as a
fraction of the range). It sums to ``f(x) − mean_r f(r)`` in expectation. The draws come from
the call's seeded generator and are shared by the examples of the batch, so an example's map
depends on neither its batch mates nor the chunk size.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..baselines import REFERENCES, REFERENCES_NOTE, resolve_references
from ..checks import nonnegative, positive_int
from ..model.explainee import Explainee
from ..registry import method
from ._common import original_scores

Draw = Callable[[torch.Tensor, torch.Tensor],
                tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


def sample_draws(ctx: Explainee, x: torch.Tensor, samples: int, n_refs: int,
                 noise: float) -> Draw:
    """``draw(k, b) -> (reference index, α, ε or None)`` for sample ``k`` of example ``b``.

    Reference and α per sample; the noise of sample ``k`` comes from its own seed, so any chunk
    can regenerate it (also after an out-of-memory retry) without holding every draw.
    """
    g = ctx.generator
    alphas = torch.rand(samples, generator=g, device=g.device, dtype=torch.float64)
    index = torch.randint(n_refs, (samples,), generator=g, device=g.device)
    seeds = torch.randint(0, 2**62, (samples,), generator=g, device=g.device).tolist()
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))

    def draw(k: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                         torch.Tensor | None]:
        k = k.to(g.device)
        if noise == 0:
            return index[k].to(x.device), alphas[k].to(x.device, x.dtype), None
        eps = torch.stack([torch.randn(x.shape[1:], device=x.device, dtype=x.dtype,
                                       generator=torch.Generator(x.device).manual_seed(seeds[i]))
                           for i in k.tolist()])
        return (index[k].to(x.device), alphas[k].to(x.device, x.dtype),
                eps * sigma[b].view(-1, *([1] * (x.dim() - 1))))

    return draw


@method(label="GradientSHAP", family="path", output="input", stochastic=True,
        choices={"references": REFERENCES}, python_only={"references": REFERENCES_NOTE},
        validators={"samples": positive_int, "noise": nonnegative}, derivative="surrogate")
def gradient_shap(ctx: Explainee, x: torch.Tensor, *, samples: int = 32, noise: float = 0.0,
                  references: object = None) -> torch.Tensor:
    """Expected (input − reference) × gradient at random points between reference and input."""
    refs, resolved = resolve_references(references, x, ctx.normalization, ctx.generator,
                                        owner="gradient_shap")
    if not isinstance(resolved, torch.Tensor):
        ctx.resolve_param("references", resolved)
    original_scores(ctx, x)  # resolve the targets from the clean input
    draw = sample_draws(ctx, x, samples, refs.shape[1], float(noise))
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    acc = torch.zeros_like(x, dtype=acc_dtype)

    def step(i: int, j: int) -> None:
        ex = [t // samples for t in range(i, j)]
        rows = torch.tensor(ex, device=x.device)
        k = torch.tensor([t % samples for t in range(i, j)], device=x.device)
        which, alpha, eps = draw(k, rows)
        xb = x[rows] if eps is None else x[rows] + eps
        rb = refs[rows if refs.shape[0] > 1 else torch.zeros_like(rows), which]
        a = alpha.view(-1, *([1] * (x.dim() - 1)))
        _, g = ctx.input_grad(a * xb + (1.0 - a) * rb, rows)
        part = (xb - rb).to(acc_dtype) * g.to(acc_dtype)
        for r, b in enumerate(ex):  # sample order per example: independent of chunking
            acc[b] += part[r]

    ctx.work.run(x.shape[0] * samples, step, item_numel=x[0].numel(), kind="backward")
    return acc / samples

"""What the stability metrics share: perturbations in an L∞ ball, re-explained maps, and the
check that a perturbation kept the prediction.

The default draws are exactly max-sensitivity's (``samples`` uniform draws, one sample at a time,
from the L∞ ball of ``radius`` × each example's value range), so with the same seed these
metrics see the same perturbed inputs as ``max_sensitivity``.
"""

from __future__ import annotations

import torch

from ..errors import SaliencyError
from ._common import MetricContext, draws, noise_scale, warn_nan

PERTURBATION_NOTE = ("a (samples, B, C, H, W) tensor of perturbations ε, to compare with other "
                     "implementations under the same draws")


def perturbations(mc: MetricContext, x: torch.Tensor, samples: int, radius: float,
                  perturbation: object, owner: str) -> torch.Tensor:
    """``(S, B, C, H, W)`` perturbations ε: drawn, or the given tensor (to compare with other
    implementations under the same draws)."""
    if isinstance(perturbation, torch.Tensor):
        eps = perturbation.to(x.device, x.dtype)
        if eps.dim() != 5 or eps.shape[1:] != x.shape:
            raise SaliencyError(f"{owner}: perturbation tensor must be (samples, "
                                f"{', '.join(map(str, x.shape))}), got {tuple(eps.shape)}")
        return eps
    if perturbation is not None:
        raise SaliencyError(f"{owner}: perturbation must be None or a tensor")
    return (2 * draws(mc.explainee, tuple(x.shape), samples, "uniform", x) - 1) \
        * noise_scale(x, radius)


def reexplain(mc: MetricContext, x: torch.Tensor, eps: torch.Tensor, owner: str
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(perturbed inputs (S, B, C, H, W), their maps (S, B, …) float64)``, each map explaining
    its example's recorded target."""
    explain = mc.require_explain(owner)
    S, B = eps.shape[:2]
    noisy = x[None] + eps
    rows = torch.arange(B, device=x.device).repeat(S)
    maps = explain(noisy.reshape(S * B, *x.shape[1:]), rows).detach().double()
    return noisy, maps.reshape(S, B, *maps.shape[1:])


def logits_of(mc: MetricContext, inputs: torch.Tensor) -> torch.Tensor:
    """``(n, classes)`` logits of a batch, in chunks, without gradients."""
    ctx = mc.explainee
    out: list[torch.Tensor] = []

    def step(i: int, j: int) -> None:
        with torch.no_grad():
            out.append(ctx.logits(inputs[i:j]))

    ctx.work.run(inputs.shape[0], step, item_numel=inputs[0].numel(), kind="forward")
    return torch.cat(out)


def unchanged_prediction(mc: MetricContext, x: torch.Tensor, noisy: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(logits of x (B, K), logits of the perturbed inputs (S, B, K), kept (S, B) bool)``:
    whether each perturbation left the predicted label as it was."""
    S, B = noisy.shape[:2]
    z = logits_of(mc, x)
    zs = logits_of(mc, noisy.reshape(S * B, *x.shape[1:])).reshape(S, B, -1)
    return z, zs, zs.argmax(2) == z.argmax(1)[None]


def relative_change(ref: torch.Tensor, new: torch.Tensor, eps_min: float) -> torch.Tensor:
    """``(S, B)`` ``‖(ref − new) / ref‖₂`` per sample, elementwise, with ``eps_min`` in place of
    zero entries of ``ref`` (Agarwal et al.'s percent change; Quantus' convention for zeros)."""
    ref = ref.double()[None] if ref.dim() == new.dim() - 1 else ref.double()
    denom = ref + (ref == 0).double() * eps_min
    change: torch.Tensor = ((ref - new.double()) / denom).flatten(2).norm(dim=2)
    return change


def max_over_kept(objective: torch.Tensor, kept: torch.Tensor, owner: str) -> torch.Tensor:
    """``(B,)`` the largest objective over the perturbations that kept the prediction; NaN (with a
    warning) where none did."""
    masked = torch.where(kept, objective, torch.full_like(objective, float("-inf")))
    best = masked.amax(0)
    none = ~kept.any(0)
    warn_nan(owner, none.cpu(), "every perturbation changed the prediction; use a smaller radius")
    return torch.where(none, torch.full_like(best, float("nan")), best)

"""Projected gradient steps on a map, in pixel space, with the rules that keep the output put.

Pixel space: the attack moves ``p = x · std + mean`` (``x`` itself without a normalization),
keeps ``‖p − p₀‖∞ ≤ ε`` and ``p ∈ [0, 1]``, and hands ``(p − mean) / std`` to the model.

A step is ``p ← Π(p − α · sign ∇ₚ L)`` (L∞ PGD; Madry et al. 2018, arXiv:1706.06083) with a step
size ``α`` per example. Keep rules, checked on the original network for every candidate step:

* ``"label"``: the predicted label must not change; a step that would change it is rejected and
  that example's ``α`` halved (Ghorbani et al. 2019, arXiv:1710.10547);
* ``"logits"``: as ``"label"``, and in addition the logits must stay within ``tolerance``
  (relative L2 change); the objective also carries Dombrowski et al.'s output term
  ``‖z − z₀‖² / ‖z₀‖²`` (arXiv:1906.07983), so steps tend to keep the logits where they were.

Objectives (minimised), on the map's magnitude ``h = Σ_c |map|`` normalised to unit mass ``q``:

* untargeted (Ghorbani): ``Σ q·[original top-k region] − ‖com(q) − com₀‖ / diagonal``, moving mass
  out of the original top-k pixels and the centre of mass away;
* targeted (after Dombrowski): ``1 − cos(h, t)`` with the target map ``t``. (Their squared
  distance between unit-mass maps rates an all-zero map, e.g. a Grad-CAM map the attack has
  rectified away, better than most real maps; the cosine rates it worst.)

The attack returns, per example, the accepted iterate whose map (on the explained network) had
the lowest objective, which may be the starting point itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import SaliencyError

KINDS = ("untargeted", "targeted")
KEEPS = ("label", "logits")
# Weight of the output term under keep="logits". The map objectives are of order 1; the term is
# (relative change)², 0.01 at the default tolerance: it steers steps away from the logits'
# limits, while the rejection rule enforces them.
LOGIT_WEIGHT = 1.0


@dataclass(frozen=True)
class PixelSpace:
    """The model's input normalization, as ``(1, C, 1, 1)`` tensors (identity without one)."""

    mean: torch.Tensor | float = 0.0
    std: torch.Tensor | float = 1.0

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def to_model(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.mean) / self.std


def pixels_of(x: torch.Tensor, space: PixelSpace, normalized: bool) -> torch.Tensor:
    """``x`` in pixel space; refuses inputs that are not images in [0, 1]."""
    p = space.to_pixels(x.detach())
    lo, hi = float(p.min()), float(p.max())
    slack = 1e-3  # rounding of the normalization
    if lo < -slack or hi > 1 + slack:
        fix = ("check that normalization= is the one the model's input was made with"
               if normalized else "pass normalization=(mean, std) for a normalized input")
        raise SaliencyError(f"attacks move pixels in [0, 1], but the input's pixel values span "
                            f"[{lo:.3g}, {hi:.3g}]; {fix}")
    return p.clamp(0, 1)


def unit_mass(h: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` non-negative maps scaled to sum 1 (an all-zero map stays zero)."""
    total = h.flatten(1).sum(1).view(-1, 1, 1)
    return h / torch.where(total > 0, total, torch.ones_like(total))


def _com(q: torch.Tensor) -> torch.Tensor:
    H, W = q.shape[-2:]
    rows = torch.arange(H, dtype=q.dtype, device=q.device)
    cols = torch.arange(W, dtype=q.dtype, device=q.device)
    return torch.stack([(q.sum(2) * rows).sum(1), (q.sum(1) * cols).sum(1)], 1)


def untargeted_loss(h: torch.Tensor, top: torch.Tensor, com0: torch.Tensor) -> torch.Tensor:
    """``(B,)`` Ghorbani's objective for maps ``h`` (see the module). An all-zero map has no
    centre: it scores its (zero) top-k mass only."""
    q = unit_mass(h)
    H, W = h.shape[-2:]
    inside = (q * top.to(q.dtype)).flatten(1).sum(1)
    gap = _com(q) - com0.to(q.dtype)
    dist = (gap.pow(2).sum(1) + 1e-12).sqrt()  # smooth at 0, where the attack starts
    dist = torch.where(h.flatten(1).sum(1) > 0, dist, torch.zeros_like(dist))
    return inside - dist / (H * H + W * W) ** 0.5


def targeted_loss(h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B,)`` one minus the cosine similarity of ``h`` and the target map, so an all-zero map
    (cosine undefined) scores 1, as badly as a map orthogonal to the target."""
    t = target.to(h.dtype).flatten(1)
    hf = h.flatten(1)
    dot = (hf * t).sum(1)
    norms = hf.norm(dim=1) * t.norm(dim=1)
    return 1 - dot / torch.where(norms > 0, norms, torch.ones_like(norms))


def logit_change(z: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """``(B,)`` relative L2 change of the logits."""
    return (z - z0).norm(dim=1) / z0.norm(dim=1).clamp_min(torch.finfo(z0.dtype).tiny)


@dataclass
class Steps:
    """What a PGD run needs from its caller, for one chunk of examples."""

    graph_map: Callable[[torch.Tensor, int], torch.Tensor]  # (pixels with grad, step) → map
    true_map: Callable[[torch.Tensor], torch.Tensor] | None  # pixels → map (None: graph reused)
    logits: Callable[[torch.Tensor], torch.Tensor]  # pixels → logits of the original network
    loss: Callable[[torch.Tensor], torch.Tensor]  # (B, H, W) magnitudes → (B,)
    labels: torch.Tensor
    logits0: torch.Tensor
    keep: str
    tolerance: float
    check_cancel: Callable[[], None]
    report: Callable[[int], None]


def heat(values: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` ``Σ_c |map|``, differentiable."""
    return values.abs().sum(1)


def run(p0: torch.Tensor, epsilon: float, steps: int, step_size: float,
        s: Steps) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Return ``(best pixels (B, C, H, W), diagnostics)`` of a PGD run from ``p0``."""
    B = p0.shape[0]
    lo, hi = (p0 - epsilon).clamp(min=0), (p0 + epsilon).clamp(max=1)
    alpha = torch.full((B,), float(step_size), dtype=p0.dtype, device=p0.device)
    p = p0.clone()
    best, best_loss = p0.clone(), torch.full((B,), float("inf"), dtype=torch.float64,
                                             device=p0.device)
    curve = torch.full((steps + 1, B), float("nan"), dtype=torch.float64)
    accepted = torch.zeros(B, dtype=torch.long)
    for it in range(steps + 1):
        s.check_cancel()
        leaf = p.detach().requires_grad_(True)
        graph_loss = None
        if s.true_map is None:  # the map being attacked is the one being judged
            graph_loss = s.loss(heat(s.graph_map(leaf, it)))
            true_loss = graph_loss.detach().double()
        else:
            with torch.no_grad():
                true_loss = s.loss(heat(s.true_map(p))).double()
        curve[it] = true_loss.cpu()
        better = true_loss < best_loss
        best = torch.where(better.view(-1, 1, 1, 1), p, best)
        best_loss = torch.where(better, true_loss, best_loss)
        if it == steps:
            break
        if graph_loss is None:
            graph_loss = s.loss(heat(s.graph_map(leaf, it)))
        if s.keep == "logits":
            graph_loss = graph_loss + LOGIT_WEIGHT * logit_change(
                s.logits(leaf), s.logits0).pow(2)
        (grad,) = torch.autograd.grad(graph_loss.sum(), leaf, allow_unused=True)
        grad = torch.zeros_like(leaf) if grad is None else torch.nan_to_num(grad)
        cand = torch.minimum(torch.maximum(p - alpha.view(-1, 1, 1, 1) * grad.sign(), lo), hi)
        with torch.no_grad():
            z = s.logits(cand)
        ok = z.argmax(1) == s.labels
        if s.keep == "logits":
            ok &= logit_change(z, s.logits0) <= s.tolerance
        p = torch.where(ok.view(-1, 1, 1, 1), cand.detach(), p)
        alpha = torch.where(ok, alpha, alpha / 2)
        accepted += ok.cpu().long()
        s.report(it + 1)
    return best, {"loss_curve": curve, "accepted_steps": accepted,
                  "best_loss": best_loss.cpu()}

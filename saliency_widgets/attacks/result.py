"""The record an attack returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from .._types import Attribution, _frozen


def _mean(t: torch.Tensor) -> float:
    t = t.double()
    ok = ~torch.isnan(t)
    return float(t[ok].mean()) if bool(ok.any()) else math.nan


@dataclass(frozen=True)
class AttackResult:
    """An attack on the explanations of a batch, with random sign noise of the same size beside it.

    Attributes
    ----------
    x, noise_x : Tensor ``(B, C, H, W)``
        The adversarial input and the noisy input, in the model's input space (normalized like
        the input that was given).
    original, attacked, noise : Attribution
        The maps of the input, of ``x`` and of ``noise_x``, each computed by ``sw.attribute`` on
        the explained network (the model, or its softplus copy under ``defence=``) for the
        original input's resolved target.
    kept, noise_kept : Tensor ``(B,)`` bool
        Whether the model's predicted label is unchanged.
    shift, noise_shift : Mapping[str, Tensor ``(B,)``]
        ``top_k_intersection`` (1 = unmoved), ``spearman`` (1 = unmoved), ``com_distance``
        (pixels, 0 = unmoved) between the original map and the attacked / noisy one.
    linf, l2, noise_linf, noise_l2 : Tensor ``(B,)``
        Size of the perturbation in pixel space ([0, 1] pixels).
    target_map : Tensor ``(B, H, W)`` or None
        The targeted attack's goal (scaled to a maximum of 1).
    target_mass : Mapping[str, Tensor ``(B,)``] or None
        Share of ``|map|`` inside the target (weighted by ``target_map``) for ``original``,
        ``attacked`` and ``noise``.
    params : Mapping
        Every setting, defaults resolved (``step_size``, whether a ``surrogate`` was used…).
    extras : Mapping
        ``loss_curve`` ``(steps + 1, B)``: the objective of the current iterate at each step;
        ``accepted_steps`` ``(B,)``; ``best_loss`` ``(B,)``; ``logit_change`` ``(B,)``.
    seconds : float
    """

    x: torch.Tensor
    noise_x: torch.Tensor
    original: Attribution
    attacked: Attribution
    noise: Attribution
    kept: torch.Tensor
    noise_kept: torch.Tensor
    shift: Mapping[str, torch.Tensor]
    noise_shift: Mapping[str, torch.Tensor]
    linf: torch.Tensor
    l2: torch.Tensor
    noise_linf: torch.Tensor
    noise_l2: torch.Tensor
    target_map: torch.Tensor | None = None
    target_mass: Mapping[str, torch.Tensor] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("shift", "noise_shift", "params", "extras"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.target_mass is not None:
            object.__setattr__(self, "target_mass", _frozen(self.target_mass))

    def summary(self) -> dict[str, float]:
        """Means over the batch (NaN-skipping): the attack's and the noise's shift side by side,
        the share of kept predictions, the largest perturbation, and the target mass."""
        out = {"kept": _mean(self.kept), "noise_kept": _mean(self.noise_kept)}
        for k in self.shift:
            out[k] = _mean(self.shift[k])
            out[f"noise_{k}"] = _mean(self.noise_shift[k])
        out["linf"] = float(self.linf.max())
        if self.target_mass is not None:
            for k, v in self.target_mass.items():
                out[f"target_mass_{k}"] = _mean(v)
        return out

    def __repr__(self) -> str:
        s = self.summary()
        p = self.params
        return (f"AttackResult({p.get('method')!r}, {p.get('kind')}, ε={p.get('epsilon'):.4g}, "
                f"B={self.kept.numel()}: kept {s['kept']:.0%}, "
                f"top-k ∩ {s['top_k_intersection']:.3f} "
                f"(noise {s['noise_top_k_intersection']:.3f}), Spearman {s['spearman']:.3f} "
                f"(noise {s['noise_spearman']:.3f}), centre moved {s['com_distance']:.2f} px "
                f"(noise {s['noise_com_distance']:.2f}))")

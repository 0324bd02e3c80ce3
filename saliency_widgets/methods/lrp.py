"""Layer-wise relevance propagation (Bach et al. 2015, PLoS ONE 10(7):e0130140; composites as in
Kohlbrenner et al. 2020, arXiv:1910.09840, and Montavon et al. 2019,
doi:10.1007/978-3-030-28954-6_10).

Relevance starts at the logits as ``logits ⊙ ∂score/∂logits`` (``l_t`` at the target, ``−l_c``
at the contrast: zennit's ``grad_outputs = one-hot × logit``, made contrastive) and flows back by
each layer's rule (``model/lrp.py``). Every rule is linear in that start, so the map explains
``l_t − l_c`` as the difference of two LRP maps, and a self-contrast starts from zeros and stays
exactly zero. Relevance is conserved layer by layer except what biases and stabilizers absorb:
the record's ``conservation_gap`` is ``Σ map − score`` per example (≈ 0 for bias-free networks).

Composites (conv layers / linear layers / first layer): ``epsilon_plus_flat`` z⁺ / ε / flat (the
default, no input bounds needed); ``epsilon_gamma_box`` γ / ε / box; ``epsilon`` ε everywhere;
``alpha1_beta0`` α1β0 everywhere. ``first_layer`` overrides the first layer's rule (``same``
keeps the composite's); the box rule's ``bounds`` default to pixel values 0–1 through
``normalization``. Batch norms after a conv/linear layer are merged into it and residual sums
split relevance in proportion to their inputs, on our copy only.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ..baselines import to_model_space
from ..checks import nonnegative
from ..errors import SaliencyError, SaliencyWarning
from ..model.explainee import Explainee
from ..model.lrp import LRPMode, Rules
from ..registry import method
from ._common import over_batch

COMPOSITES = {"epsilon_plus_flat": ("zplus", "epsilon", "flat"),
              "epsilon_gamma_box": ("gamma", "epsilon", "box"),
              "epsilon": ("epsilon", "epsilon", "same"),
              "alpha1_beta0": ("zplus", "zplus", "same")}
FIRST = (None, "same", "flat", "box")


def _bounds(ctx: Explainee, x: torch.Tensor, bounds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if bounds is None:
        if ctx.normalization is None:
            raise SaliencyError("lrp: the box rule needs the input's range: pass normalization="
                                "(mean, std) (pixels 0–1), or bounds=(low, high) in input space,"
                                " or first_layer='flat'")
        zeros = torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
        norm = ctx.normalization
        return to_model_space(zeros, norm), to_model_space(zeros + 1, norm)
    try:
        low, high = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in bounds)
        low, high = torch.broadcast_tensors(low, high, x[:1])[:2]
    except (TypeError, ValueError, RuntimeError) as err:
        raise SaliencyError(f"lrp: bounds must be (low, high), numbers or tensors that broadcast "
                            f"to one input {tuple(x[:1].shape)}; got {bounds!r}") from err
    if not bool((low < high).all()):
        raise SaliencyError("lrp: bounds=(low, high) needs low < high everywhere")
    return low, high


@method(label="LRP", family="relevance", output="input",
        choices={"composite": tuple(COMPOSITES), "first_layer": FIRST},
        validators={"epsilon": nonnegative, "gamma": nonnegative, "stabilizer": nonnegative},
        python_only={"bounds": "(low, high) of the box rule, numbers or tensors in input space"})
def lrp(ctx: Explainee, x: torch.Tensor, *, composite: str = "epsilon_plus_flat",
        first_layer: str | None = None, epsilon: float = 1e-6, gamma: float = 0.25,
        stabilizer: float = 1e-6, bounds: object = None) -> torch.Tensor:
    """Relevance of each input value for the score, propagated back by LRP rules."""
    conv, linear, first = COMPOSITES[composite]
    first = first if first_layer is None else first_layer
    low = high = None
    if first == "box":
        low, high = _bounds(ctx, x, bounds)
    rules = Rules(conv=conv, linear=linear, first=first, epsilon=float(epsilon),
                  gamma=float(gamma), stabilizer=float(stabilizer), low=low, high=high)
    ctx.resolve_param("first_layer", first)
    seen = {"unmerged": 0, "outside": False}

    def run(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mode = LRPMode(rules, first_input=xb if first == "box" and bounds is None else None)
        s, _, r = ctx.input_grad_under(xb, rows, mode=mode, relevance=True, original=True)
        if mode.layers == 0:
            raise SaliencyError("lrp: the model made no conv or linear call, so no LRP rule "
                                "applies; LRP needs torch.nn conv/linear layers (F.conv*d, "
                                "F.linear)")
        seen["unmerged"] += mode.unmerged
        seen["outside"] |= mode.outside
        return s, r

    s, r = over_batch(ctx, x, run, kind="backward")
    ctx.note("conservation_gap", (r.flatten(1).sum(1) - s).detach())
    if seen["unmerged"]:
        warnings.warn("lrp: a batch norm that does not directly follow a conv/linear layer was "
                      "not merged; it passes relevance unchanged (zennit's Pass), so its scaling "
                      "is not explained", SaliencyWarning, stacklevel=3)
    if seen["outside"]:
        warnings.warn("lrp: the input leaves the box rule's bounds (low ≤ x ≤ high); the box "
                      "rule assumes inputs inside them. Check normalization= or bounds=",
                      SaliencyWarning, stacklevel=3)
    return r

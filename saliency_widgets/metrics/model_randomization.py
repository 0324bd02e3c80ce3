"""Model-parameter randomization test (Adebayo et al., NeurIPS 2018, arXiv:1810.03292).

A method that explains the *model* must change its map when the model's weights are destroyed.
``cascading`` (default) re-draws the blocks from the last one in execution order downward,
cumulatively: step ``k`` has the last ``k`` blocks random. ``independent`` re-draws one block at a
time (same top-down order) with the others intact. Blocks, their execution order and the re-draw
are described in ``saliency_widgets/model/randomize.py``; the randomized models are copies, the
user's model is never modified and the global RNG is never used (the draws are seeded from
``seed``).

After each step the map is recomputed with the same method, parameters and resolved target
(``mc.explain_on``) and compared with the original map, per example, on the channel-reduced maps:

* ``spearman_abs`` (default): Spearman rank correlation of ``|map|`` (ties get average ranks);
* ``spearman``: Spearman of the signed map;
* ``ssim``: SSIM (Wang et al. 2004; a 7×7 uniform window, sample covariance, ``K1=0.01``,
  ``K2=0.03``, the mean over windows inside the image, as scikit-image's defaults) of the two maps,
  each min-max normalised to [0, 1] (data range 1; a constant map becomes all zeros);
* ``hog``: the Pearson correlation of the HOG descriptors (9 orientations, even cells of about
  1/8 of the short side, 2×2-cell blocks, L2-Hys: ``skimage.feature.hog``'s) of the two min-max
  normalised maps, the paper's fourth measure; NaN for maps under 4 px on a side.

The measures live in ``_similarity.py`` (shared with ``sw.data_randomization``).
``curve`` is the chosen similarity per step ``(B, steps)``; all four are in ``extras`` with the
randomized ``blocks`` of each step. The score is the mean over the randomization steps only: the
original model's similarity with itself (1) is never averaged in (Quantus' MPRT averages it in
because its skip key ``"orig"`` does not match the stored key ``"original"``). Lower is better:
a method that passes the sanity check loses similarity. When randomization makes a map constant
(common for Grad-CAM), it keeps none of the original ranking: similarity 0. Only a constant
*original* map leaves the score undefined: NaN, with a warning.
"""

from __future__ import annotations

import torch

from ..errors import SaliencyError
from ..model.randomize import Randomizer, execution_order, parameter_blocks
from ..registry import metric
from ..reduce import REDUCTIONS
from ._common import MetricContext, Scored, pixel_map, warn_nan
from ._similarity import SIMILARITIES, similarities, spearman, ssim  # noqa: F401  (re-exported)

MODES = ("cascading", "independent")


def _block_names(blocks: object, model: torch.nn.Module) -> list[str]:
    if blocks is None:
        names = parameter_blocks(model)
    elif isinstance(blocks, (list, tuple)) and blocks and all(isinstance(n, str) for n in blocks):
        names = list(blocks)
        if len(set(names)) != len(names):
            raise SaliencyError(f"model_randomization: blocks has duplicates: {names}")
    else:
        raise SaliencyError(f"model_randomization: blocks must be None (top-level children with "
                            f"parameters) or a non-empty list of module names, got {blocks!r}")
    if not names:
        raise SaliencyError("model_randomization: the model has no child module with "
                            "parameters to randomize; pass blocks= a list of module names")
    return names


@metric(label="Model randomization (sanity check)", family="randomization",
        higher_is_better=False, stochastic=True,
        choices={"mode": MODES, "similarity": SIMILARITIES, "reduction": REDUCTIONS},
        python_only={"blocks": "a list of module names, re-drawn top-down"})
def model_randomization(mc: MetricContext, x: torch.Tensor, values: torch.Tensor, *,
                        mode: str = "cascading", similarity: str = "spearman_abs",
                        blocks: object = None, reduction: str = "sum") -> Scored:
    """Similarity of the map to the maps of progressively randomized models; lower is better."""
    ctx = mc.explainee
    if mc.explain_on is None:
        raise SaliencyError("model_randomization re-explains with randomized models, but the "
                            "attribution is a plain tensor: pass the Attribution record from "
                            "sw.attribute, or explain=callable(model, x) -> tensor")
    names = _block_names(blocks, ctx.model)
    ran, unused = execution_order(ctx.model, names, lambda net: net(x[:1]))
    if not ran:
        raise SaliencyError(f"model_randomization: none of the blocks {names} ran in the "
                            f"forward pass")
    top_down = ran[::-1]
    seeds = torch.randint(0, 2 ** 62, (len(top_down),), generator=ctx.generator,
                          device=ctx.generator.device).tolist()
    randomizer = Randomizer(ctx.model, dict(zip(top_down, seeds)))
    ref = pixel_map(values, reduction)
    rows = torch.arange(x.shape[0], device=x.device)
    steps = len(top_down)
    per: dict[str, list[torch.Tensor]] = {k: [] for k in SIMILARITIES}
    randomized: list[list[str]] = []
    for k in range(steps):
        ctx.work.check_cancel()
        chosen = top_down[:k + 1] if mode == "cascading" else [top_down[k]]
        new = mc.explain_on(randomizer.copy(chosen), x, rows)
        new = torch.as_tensor(new).detach().to(x.device)
        if new.dim() != 4 or new.shape[0] != x.shape[0] or new.shape[2:] != x.shape[2:]:
            raise SaliencyError(f"model_randomization: the re-explained map has shape "
                                f"{tuple(new.shape)}; expected ({x.shape[0]}, C or 1, "
                                f"{x.shape[2]}, {x.shape[3]})")
        for key, v in similarities(ref, pixel_map(new, reduction)).items():
            per[key].append(v.cpu())
        randomized.append(list(chosen))
        ctx.work.report(k + 1, steps)
    curves = {key: torch.stack(v, 1) for key, v in per.items()}  # (B, steps)
    mc.extras.update(curves)
    mc.extras["blocks"] = randomized
    mc.extras["mode"] = mode
    if unused:
        mc.extras["unused_blocks"] = unused
    curve = curves[similarity]
    score = curve.mean(1)
    warn_nan("model_randomization", torch.isnan(score),
             "the original map is constant, so there is no ranking to compare")
    return Scored(score, curve=curve, curve_x=torch.arange(1, steps + 1, dtype=torch.float64))

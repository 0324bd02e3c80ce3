"""DeepLIFT-SHAP: DeepLIFT averaged over a set of references (Lundberg & Lee 2017,
arXiv:1705.07874, "Deep SHAP"; DeepLIFT: Shrikumar et al. 2017, arXiv:1704.02685).

``mean_r (x − r) ⊙ m(x, r)`` over the references ``r``: a tensor ``(R, C, H, W)`` shared by
every example (e.g. a sample of training images, in the model's input space). It sums to
``f(x) − mean_r f(r)`` (``summation_gap`` in the record). Without a reference set
(``references=None``, a number or a name) it is DeepLIFT with that one baseline.
"""

from __future__ import annotations

import torch

from ..baselines import REFERENCES, REFERENCES_NOTE, resolve_references
from ..model.explainee import Explainee
from ..registry import method
from ._rescale import rescale_mean


@method(label="DeepLIFT-SHAP", family="relevance", output="input",
        choices={"references": REFERENCES}, python_only={"references": REFERENCES_NOTE})
def deeplift_shap(ctx: Explainee, x: torch.Tensor, *, references: object = None) -> torch.Tensor:
    """DeepLIFT attributions averaged over a reference set."""
    refs, resolved = resolve_references(references, x, ctx.normalization, ctx.generator,
                                        owner="deeplift_shap")
    if not isinstance(resolved, torch.Tensor):
        ctx.resolve_param("references", resolved)
    return rescale_mean(ctx, x, refs)

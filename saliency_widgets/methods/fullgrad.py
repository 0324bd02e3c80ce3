"""FullGrad (Srinivas & Fleuret 2019, arXiv:1905.00780).

A network with biases is ``f(x) = ∇ₓf·x + Σ_b ∇_b f·b`` when it is piecewise linear; FullGrad
shows every term: ``Σ_c ψ(|x ⊙ ∇ₓf|_c) + Σ_layers Σ_c ψ(|b_c · ∂f/∂z_c|)`` where ``z`` is the
output of a biased 2-D convolution or batch norm (its effective bias ``β − γμ/√(σ²+ε)``, see
``model/bias.py``) and ``ψ`` min-max scales one channel's map to [0, 1] on its own grid (0 when
constant) before bilinear upsampling (``align_corners=False``). Channels are summed on each grid
and upsampled once, which equals upsampling each (bilinear resizing is linear). Non-negative;
the sum is not rescaled (pytorch-grad-cam min-max scales it). One forward and one backward.
Scaling each channel on its own (the paper's sum over channels, as pytorch-grad-cam does) means
a channel's bias enters only through where ``|b_c · ∂f/∂z_c|`` is large, not how large; the
authors' released code scales each layer as a whole instead. pytorch-grad-cam adds 1e-7 to each
channel's max instead of testing for a constant map, and skips batch norms without affine
parameters, whose bias ``−μ/√(σ²+ε)`` we keep.
"""

from __future__ import annotations

import torch

from ..model.explainee import Explainee
from ..registry import method
from ._common import over_batch, upsample


def channel_scaled_sum(m: torch.Tensor) -> torch.Tensor:
    """``Σ_c minmax(|m_c|)`` over the channels of ``(n, C, h, w)``: ``(n, 1, h, w)``."""
    m = m.abs()
    lo = m.amin(dim=(2, 3), keepdim=True)
    span = m.amax(dim=(2, 3), keepdim=True) - lo
    scaled = torch.where(span > 0, (m - lo) / torch.where(span > 0, span, 1), 0)
    return scaled.sum(dim=1, keepdim=True)


@method(label="FullGrad", family="cam", output="map")
def fullgrad(ctx: Explainee, x: torch.Tensor) -> torch.Tensor:
    """Input-gradient and bias-gradient maps of every biased 2-D layer, each scaled, summed."""
    size = tuple(x.shape[-2:])
    count = [0]

    def one(xb: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor]:
        _, gx, terms = ctx.bias_grads(xb, rows, original=True)
        total = channel_scaled_sum(xb * gx)
        count[0] = len(terms)
        for g, b in terms:
            total = total + upsample(channel_scaled_sum(g * b.to(g.dtype)[None, :, None, None]),
                                     size)
        return (total,)

    (values,) = over_batch(ctx, x, one, kind="backward")
    ctx.note("bias_layers", count[0])  # how many biased layers contributed
    return values

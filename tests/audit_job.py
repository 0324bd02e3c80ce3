"""One fixed audit, run as a subprocess by the crash-safety and torchrun tests.

``python tests/audit_job.py OUT`` (under torchrun too). The configuration exercises what a
resume must reproduce: a stochastic method (SmoothGrad draws noise from each batch's seed), a
metric with masks, groups, a contrast, and a short last batch (44 = 5·8 + 4).
"""

from __future__ import annotations

import sys

import torch

import saliency_widgets as sw

N, BATCH = 44, 8


def run(out: str) -> sw.Audit:
    torch.set_num_threads(1)  # bitwise-equal results across processes need equal thread counts
    model = sw.demo.load_model("shapes")
    data = sw.demo.sample(N, seed=3, watermark="train")
    return sw.audit(model, data, methods={"grad_cam": {}, "smoothgrad": {"samples": 2}},
                    metrics=("relevance_mass",), groups="watermarked", target="pred_vs_label",
                    batch_size=BATCH, out=out, progress=False)


if __name__ == "__main__":
    run(sys.argv[1])

"""Data-set audits: the engine over every example, stored crash-safely, with aggregates.

>>> audit = sw.audit(model, data, methods=("grad_cam",), out="runs/audit")   # doctest: +SKIP
>>> audit.confusion(); audit.mean_map("grad_cam", by="label")                 # doctest: +SKIP
>>> sw.load_audit("runs/audit").query(sort_by="loss", descending=True)       # doctest: +SKIP
"""

from .aggregate import Disparity, MeanMaps
from .result import Audit, Clusters, Ranking, load_audit
from .run import audit
from .synthetic import synthetic_audit

__all__ = ["Audit", "Clusters", "Disparity", "MeanMaps", "Ranking", "audit", "load_audit",
           "synthetic_audit"]

"""saliency_widgets: where did a PyTorch image classifier look?

>>> import saliency_widgets as sw
>>> attr = sw.attribute(model, x, method="integrated_gradients")  # doctest: +SKIP
"""

from ._types import Attribution, MetricResult, Prediction
from .api import (attribute, evaluate, fingerprint, list_layers, list_methods, list_metrics,
                  predict)
from .audit import Audit, audit, load_audit
from .errors import Cancelled, SaliencyError, SaliencyWarning
from .reduce import reduce_channels
from .sanity import data_randomization
from .validation import ValidationTable, validate
from .widget import ExplorerWidget, SaliencyWidget, explore, show
from . import demo  # noqa: F401  (sw.demo: the built-in data set and models)
from .agreement import agreement
from .attacks import AttackResult, attack, attack_sweep
from . import attacks  # noqa: F401  (sw.attacks: softplus_copy, map_shift, …)

__all__ = ["Attribution", "Cancelled", "MetricResult", "Prediction", "SaliencyError",
           "SaliencyWarning", "SaliencyWidget", "ValidationTable", "attribute",
           "data_randomization", "evaluate", "fingerprint", "list_methods", "list_metrics",
           "predict", "reduce_channels", "show", "validate"]
__all__ += ["AttackResult", "agreement", "attack", "attack_sweep"]
__all__ += ["ExplorerWidget", "explore"]
__all__ += ["Audit", "audit", "load_audit"]
__all__ += ["list_layers"]
__version__ = "0.1.0"

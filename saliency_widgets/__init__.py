"""saliency_widgets: where did a PyTorch image classifier look?

>>> import saliency_widgets as sw
>>> attr = sw.attribute(model, x, method="integrated_gradients")  # doctest: +SKIP
"""

from ._types import Attribution, MetricResult
from .api import attribute, evaluate, list_methods, list_metrics
from .audit import Audit, audit, load_audit
from .errors import Cancelled, SaliencyError, SaliencyWarning
from .reduce import reduce_channels
from .validation import ValidationTable, validate
from .widget import SaliencyWidget, show
from . import demo  # noqa: E402  (sw.demo: the built-in data set and models)

__all__ = ["Attribution", "Audit", "Cancelled", "MetricResult", "SaliencyError", "SaliencyWarning",
           "SaliencyWidget", "ValidationTable", "attribute", "audit", "evaluate", "list_methods",
           "list_metrics", "load_audit", "reduce_channels", "show", "validate"]
__version__ = "0.1.0"

"""saliency_widgets: where did a PyTorch image classifier look?

>>> import saliency_widgets as sw
>>> attr = sw.attribute(model, x, method="integrated_gradients")  # doctest: +SKIP
"""

from ._types import Attribution, MetricResult
from .api import attribute, evaluate, list_methods, list_metrics
from .errors import Cancelled, SaliencyError, SaliencyWarning
from .reduce import reduce_channels

__all__ = ["Attribution", "Cancelled", "MetricResult", "SaliencyError", "SaliencyWarning",
           "attribute", "evaluate", "list_methods", "list_metrics", "reduce_channels"]
__version__ = "0.1.0"

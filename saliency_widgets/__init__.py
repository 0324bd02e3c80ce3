"""saliency_widgets: where did a PyTorch image classifier look?

>>> import saliency_widgets as sw
>>> attr = sw.attribute(model, x, method="integrated_gradients")  # doctest: +SKIP
"""

from ._types import Attribution, MetricResult
from .api import attribute, evaluate, list_methods, list_metrics
from .errors import Cancelled, SaliencyError, SaliencyWarning
from .reduce import reduce_channels
from .sanity import data_randomization
from .validation import ValidationTable, validate
from .widget import SaliencyWidget, show
from . import demo  # noqa: E402  (sw.demo: the built-in data set and models)

__all__ = ["Attribution", "Cancelled", "MetricResult", "SaliencyError", "SaliencyWarning",
           "SaliencyWidget", "ValidationTable", "attribute", "data_randomization", "evaluate",
           "list_methods", "list_metrics", "reduce_channels", "show", "validate"]
__version__ = "0.1.0"

"""saliency_widgets: where did a PyTorch image classifier look?

>>> import saliency_widgets as sw
>>> attr = sw.attribute(model, x, method="integrated_gradients")  # doctest: +SKIP
"""

from ._types import Attribution
from .api import attribute, list_methods
from .errors import Cancelled, SaliencyError, SaliencyWarning
from .reduce import reduce_channels

__all__ = ["Attribution", "Cancelled", "SaliencyError", "SaliencyWarning", "attribute",
           "list_methods", "reduce_channels"]
__version__ = "0.1.0"

"""One file per metric: ``name(mc, x, values, **params) -> Scored``, registered by name.

Metrics never import methods (and methods never import metrics): re-explaining perturbed inputs
goes through ``mc.explain``, which the API builds.
"""

from . import (complexity, completeness, deletion, infidelity, insertion,  # noqa: F401
               max_sensitivity, pointing_game, relevance_mass, relevance_rank, sparseness)
from . import model_randomization, road  # noqa: F401
from . import avg_sensitivity, relative_input_stability, relative_output_stability  # noqa: F401
from . import top_k_iou  # noqa: F401

"""Red-teaming explanations: attacks that move a map while the prediction stays put.

``sw.attack(model, x, method=...)`` (``attack.py``) runs projected gradient steps in pixel space
(``pgd.py``), with a softplus surrogate where the method sees the input only through the gradient
(``surrogate.py``), and measures how far the map moved beside random sign noise of the same size
(``shift.py``). ``softplus_copy`` is the smoothed network of Dombrowski et al.'s defence.
"""

from .attack import SWEEP, attack, attack_sweep
from .result import AttackResult
from .shift import map_shift
from .surrogate import GRADIENT_ONLY, softplus_copy

__all__ = ["GRADIENT_ONLY", "SWEEP", "AttackResult", "attack", "attack_sweep", "map_shift",
           "softplus_copy"]

"""The demo models: a small CNN for the shape images, and the bundled weights.

``ShapesNet`` takes images in [0, 1] (``sw.demo.sample(...).x``); its first module normalizes
them. Its last 4-D module with more than 1×1 positions is ``features`` (its last conv block's
ReLU, at 16×16 for 64×64 inputs, receptive field 34 px), which CAM methods pick automatically.
61 k parameters; a weight file is 0.25 MB.
"""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from .data import CLASSES

__all__ = ["MODELS", "NORMALIZATION", "Normalize", "ShapesNet", "check_name", "load_model",
           "weights_path"]

MODELS = ("shapes", "shapes_clever_hans")
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
# What to pass as ``normalization=`` for the demo models: they take [0, 1] pixels and normalize
# inside, so their input space *is* pixel space (named baselines such as "black" are then 0).
NORMALIZATION = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel; mean and std are buffers (saved with the weights)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...] = MEAN, std: tuple[float, ...] = STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _block(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class MaxClassMaps(nn.Module):
    """A 1×1 convolution to one evidence map per class, then its maximum over positions.

    The maps are computed inside this module (no 4-D submodule output), so automatic CAM
    layer choice lands on the features before it. Max pooling over class maps (as in Oquab et
    al., CVPR 2015) trained several times faster here than global average pooling, and with
    the training's one-vs-rest loss term each map stays negative away from its class's
    evidence. No bias: Grad-CAM on the features before it is then exactly
    ``relu(map of the class) / (h·w)``, the class's own evidence map.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, channels, 1, 1))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)

    def maps(self, a: torch.Tensor) -> torch.Tensor:
        return F.conv2d(a, self.weight)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.maps(a).amax(dim=(2, 3))


class ShapesNet(nn.Module):
    """normalize → conv/2-BN-ReLU → conv-BN-ReLU → max pool → conv-BN-ReLU → dilated
    conv-BN-ReLU → class maps → global max; 64×64 → 32×32 → 16×16 (``features``, the CAM
    layer). The dilation lets one position see a whole large shape (34 px receptive field).

    The global max passes gradient to one position of the class map, so gradient-based maps of
    a logit are non-zero only inside that position's 34 × 34 px receptive field (a square
    around the object, not dead ReLUs; ``scripts/demo_figures.py`` measures it)."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.normalize = Normalize()
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            *_block(w, 2 * w), nn.MaxPool2d(2),
            *_block(2 * w, 4 * w), *_block(4 * w, 4 * w, dilation=2))
        self.head = MaxClassMaps(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.normalize(x)))

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The per-class evidence maps ``(B, classes, h, w)`` whose maxima are the logits."""
        return self.head.maps(self.features(self.normalize(x)))


def check_name(name: str) -> str:
    """``name`` if it is a demo model, else a ValueError that lists them."""
    if name not in MODELS:
        raise ValueError(f"unknown demo model {name!r}; choose one of {', '.join(MODELS)}")
    return name


def weights_path(name: str):
    """The bundled weight file of model ``name`` (a ``Traversable`` inside the package)."""
    check_name(name)
    return resources.files(__package__) / "weights" / f"{name}.pt"


def load_model(name: str = "shapes", device: str | torch.device = "cpu") -> ShapesNet:
    """Return the bundled model ``name`` ("shapes" or "shapes_clever_hans") in eval mode.

    The weights load with ``torch.load(..., weights_only=True)``: no pickled code runs.
    """
    path = weights_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"the weights of {name!r} are missing ({path}); train them with "
                                f"python -m saliency_widgets.demo.train --model {name} "
                                f"--out {path}")
    with resources.as_file(path) as file:
        state = torch.load(file, map_location="cpu", weights_only=True)
    model = ShapesNet()
    model.load_state_dict(state)
    return model.eval().to(device)

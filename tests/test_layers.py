"""``sw.list_layers``: the modules worth explaining at, every one accepted by ``layer=``."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models import VisionTransformer

import saliency_widgets as sw


class Net(nn.Module):
    """Convolutions at depths 1–3, a conv-free branch, and a transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.body = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
                                  nn.ReLU())
        self.up = nn.ConvTranspose2d(4, 4, 1)
        self.gate = nn.Sequential(nn.Linear(4, 4), nn.ReLU())  # no convolution
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.up(self.body(self.stem(x)))
        return self.head(self.gate(h.mean((2, 3))))


def test_convolutions_up_to_two_levels_input_side_first():
    assert sw.list_layers(Net()) == ["stem", "body", "body.0", "up"]
    names = sw.list_layers(torchvision.models.resnet18(weights=None))
    assert names[:3] == ["conv1", "layer1", "layer1.0"] and names[-1] == "layer4.1"
    assert "layer4" in names and "fc" not in names
    assert sw.list_layers(torchvision.models.resnet18(weights=None), limit=2) == ["conv1",
                                                                                    "layer1"]


def test_every_listed_layer_is_accepted_and_the_model_is_untouched():
    model = Net().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for name in sw.list_layers(torch.nn.DataParallel(model)):  # wrappers are looked through
        attr = sw.attribute(model, x, method="grad_cam", layer=name, target=0)
        assert attr.layer == name and attr.values.shape == (1, 1, 8, 8)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_vit_lists_each_blocks_ln_1_as_the_engine_reads_it():
    with torch.random.fork_rng():  # torchvision draws its weights from the global RNG
        torch.manual_seed(0)
        vit = VisionTransformer(image_size=16, patch_size=8, num_layers=3, num_heads=2,
                                hidden_dim=8, mlp_dim=16, num_classes=3).eval()
        with torch.no_grad():  # torchvision starts the head at zero: every gradient would be 0
            vit.heads.head.weight.normal_()
    names = sw.list_layers(vit)
    blocks = [f"encoder.layers.encoder_layer_{i}.ln_1" for i in range(3)]
    assert names == ["conv_proj", *blocks]
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    auto = sw.attribute(vit, x, method="grad_cam", target=0, relu=False)
    assert auto.layer == blocks[-1], "the automatic choice is the last block's ln_1"
    assert bool(auto.values.abs().sum() > 0)
    named = sw.attribute(vit, x, method="grad_cam", target=0, relu=False, layer=blocks[-1])
    torch.testing.assert_close(named.values, auto.values, rtol=0, atol=0)


def test_limit_is_checked():
    import pytest
    with pytest.raises(sw.SaliencyError, match="limit must be an int ≥ 1"):
        sw.list_layers(Net(), limit=0)

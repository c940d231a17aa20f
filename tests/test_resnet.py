"""ResNet-50 v1.5 with torchvision's parameter names and shapes (torchvision itself cannot be imported here)."""

from __future__ import annotations

import torch

import methods
from trainables.tasks.resnet.model import ResNet50


def torchvision_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of torchvision.models.resnet50(), written out from its documented layout."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix: str, c: int) -> None:
        keys.update(
            {
                f"{prefix}.weight": (c,),
                f"{prefix}.bias": (c,),
                f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,),
                f"{prefix}.num_batches_tracked": (),
            }
        )

    bn("bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            keys[f"{p}.conv3.weight"] = (4 * planes, planes, 1, 1)
            bn(f"{p}.bn3", 4 * planes)
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (4 * planes, inplanes, 1, 1)
                bn(f"{p}.downsample.1", 4 * planes)
            inplanes = 4 * planes
    keys.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return keys


def test_state_dict_matches_torchvision_names_and_shapes():
    model = ResNet50()
    expected = torchvision_resnet50_keys()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected and len(got) == 320
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's documented count


def test_a_torchvision_style_state_dict_loads_and_v1_5_strides():
    model = ResNet50()
    state = {k: torch.randn(s) if s else torch.tensor(0) for k, s in torchvision_resnet50_keys().items()}
    model.load_state_dict(state)  # strict
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    assert model.layer2[0].downsample[0].stride == (2, 2)


def test_prunable_tensors_are_every_conv_and_the_fc():
    names = list(methods.prunable_parameters(ResNet50(width=8, num_classes=10)))
    assert len(names) == 53 + 1 and names[0] == "conv1.weight" and names[-1] == "fc.weight"
    assert sum("downsample.0" in n for n in names) == 4 and not any("bn" in n for n in names)


def test_init_follows_the_study_and_a_narrow_net_runs():
    model = ResNet50(width=8, num_classes=10)
    assert all((m.bn3.weight == 0).all() for m in model.modules() if hasattr(m, "bn3"))
    assert abs(model.fc.weight.std().item() - 0.01) < 0.002 and (model.fc.bias == 0).all()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)

"""Architecture registry: the paper's CNNs, the binary ViT head, timm overrides, user factories, weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rpg.errors import RPGInputError
from rpg.io import save_state_dict
from rpg.zoos import recipes as zoos
from rpg.zoos.architectures import (
    build_model,
    check_spec,
    count_params,
    head_parameters,
    load_matching,
    load_weights_strict,
)

TORCH_THREADS = 1  # small models: one thread avoids OpenMP oversubscription (see conftest.py)


def test_cnn_s_matches_paper_shapes():
    m = build_model({"name": "cnn_s", "kwargs": {"in_chans": 3}})
    assert count_params(m) == 2864  # RPG's dataset/cifar10_cnnsmall/model.py (RGB)
    assert count_params(build_model({"name": "cnn_s", "kwargs": {"in_chans": 1}})) == 2464
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes["conv1.weight"] == (8, 3, 5, 5) and shapes["conv2.weight"] == (6, 8, 5, 5)
    assert shapes["conv3.weight"] == (4, 6, 2, 2) and shapes["fc1.weight"] == (20, 36)
    # RPG resizes to 28x28 inside forward: 32x32 CIFAR images and 28x28 images both work
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert m(torch.randn(2, 3, 28, 28)).shape == (2, 10)


def test_cnn_s_pools_before_activation():
    # LeakyReLU(maxpool(x)) == maxpool(LeakyReLU(x)) since both are monotone; check the forward against a
    # hand-written reference instead, which would differ if ReLU-style clipping or another order were used
    m = build_model({"name": "cnn_s", "kwargs": {"in_chans": 1}})
    x = torch.randn(3, 1, 28, 28)
    F = torch.nn.functional
    h = F.leaky_relu(F.max_pool2d(m.conv1(x), 2))
    h = F.leaky_relu(F.max_pool2d(m.conv2(h), 2))
    h = F.leaky_relu(m.conv3(h)).flatten(1)
    ref = m.fc2(F.leaky_relu(m.fc1(h)))
    torch.testing.assert_close(m(x), ref)


def test_cnn_m_matches_paper_shapes():
    m = build_model({"name": "cnn_m", "kwargs": {"in_chans": 3, "num_classes": 10}})
    assert count_params(m) == 10853  # RPG's dataset/cifar10_cnnmedium/model.py
    assert m.fc1.in_features == 60
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(RuntimeError):  # CNN(m) consumes 32x32 only (60 features)
        m(torch.randn(2, 3, 28, 28))


def test_vit_tiny_binary_head():
    m = build_model({"name": "vit_tiny_binary", "kwargs": {}})
    head = m.head
    assert isinstance(head[0], nn.Linear) and (head[0].in_features, head[0].out_features) == (192, 192)
    assert isinstance(head[1], nn.SiLU)
    assert isinstance(head[2], nn.Linear) and head[2].out_features == 2 and head[2].bias is None
    assert sum(p.numel() for p in head.parameters()) == 37440  # official dataset/condition_classinput_vittiny
    assert {id(p) for p in head_parameters(m)} == {id(p) for p in head.parameters()}
    small = build_model(
        {
            "name": "vit_tiny_binary",
            "kwargs": {
                "img_size": 8,
                "patch_size": 4,
                "in_chans": 1,
                "embed_dim": 8,
                "depth": 1,
                "num_heads": 2,
            },
        }
    )
    assert small(torch.randn(2, 1, 8, 8)).shape == (2, 2)


def test_timm_overrides_and_errors():
    m = build_model(
        {
            "name": "timm:resnet18",
            "kwargs": {
                "layers": [1, 1, 1, 1],
                "channels": [4, 8, 12, 16],
                "stem_width": 8,
                "in_chans": 1,
                "num_classes": 7,
            },
        }
    )
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 7)
    assert not m.training  # built in eval mode
    with pytest.raises(RPGInputError, match="not a timm model"):
        build_model({"name": "timm:no_such_net"})
    with pytest.raises(RPGInputError, match="rejected"):
        build_model({"name": "timm:resnet18", "kwargs": {"no_such_kwarg": 1}})
    with pytest.raises(RPGInputError, match="pretrained"):
        build_model({"name": "timm:resnet18", "kwargs": {"pretrained": True}})
    with pytest.raises(RPGInputError, match="unknown architecture"):
        build_model({"name": "nonexistent"})
    with pytest.raises(RPGInputError, match="unknown keys"):
        check_spec({"name": "cnn_s", "kwarg": {}})
    with pytest.raises(RPGInputError, match="JSON"):
        check_spec({"name": "cnn_s", "kwargs": {"x": object()}})


def test_resnet50_gn_is_timm_resnet50_gn():
    import timm

    ours = build_model({"name": "resnet50_gn", "kwargs": {}})
    ref = timm.create_model("resnet50_gn", pretrained=False)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    assert all(m.num_groups == 32 for m in ours.modules() if isinstance(m, nn.GroupNorm))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in ours.modules())
    mini = build_model(zoos.get_zoo("mini/resnet50").architecture)
    assert all(m.num_groups == 4 for m in mini.modules() if isinstance(m, nn.GroupNorm))


def test_user_factory():
    m = build_model({"name": "torch.nn:Linear", "kwargs": {"in_features": 3, "out_features": 2}})
    assert isinstance(m, nn.Linear)
    with pytest.raises(RPGInputError, match="cannot import"):
        build_model({"name": "no_such_module_xyz:f"})
    with pytest.raises(RPGInputError, match="no callable"):
        build_model({"name": "torch.nn:NoSuchThing"})
    with pytest.raises(RPGInputError, match="not an nn.Module"):
        build_model({"name": "builtins:dict", "kwargs": {"a": 1}})


def test_mobilenetv3_custom():
    spec = zoos.get_zoo("mini/mobilenetv3").architecture
    m = build_model(spec)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(RPGInputError, match="arch_def"):
        build_model({"name": "mobilenetv3_custom", "kwargs": {"arch_def": [["xx_r1"]]}})


def test_mini_tab1_parameter_ordering():
    order = ["convnext_atto", "vit_tiny", "resnet18", "vit_small", "resnet50", "vit_base", "convnext_large"]
    counts = [count_params(build_model(zoos.get_zoo(f"mini/{n}").architecture)) for n in order]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)  # paper Tab. 1 ordering
    assert 2000 <= counts[0] and counts[-1] <= 60000
    tab8 = ["cnn_s", "cnn_m", "mobilenetv3", "resnet18", "vit_base"]
    c8 = [count_params(build_model(zoos.get_zoo(f"mini/{n}").architecture)) for n in tab8]
    assert c8 == sorted(c8)  # paper Tab. 8 ordering


def test_weights_loading(tmp_path):
    spec = {"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 10}}
    src = build_model(spec)
    save_state_dict(tmp_path / "w.safetensors", src.state_dict())
    # a 3-class head: the head is left at init, everything else is loaded
    dst = build_model(
        {"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 3}}, weights=tmp_path / "w.safetensors"
    )
    torch.testing.assert_close(dst.conv1.weight, src.conv1.weight)
    assert dst.fc2.weight.shape == (3, 20)
    # weights of another architecture
    save_state_dict(tmp_path / "other.safetensors", build_model({"name": "cnn_m", "kwargs": {}}).state_dict())
    with pytest.raises(RPGInputError, match="wrong weights file"):
        load_matching(build_model(spec), tmp_path / "other.safetensors")


def test_strict_loading_names_the_problem():
    m = build_model({"name": "cnn_s", "kwargs": {"in_chans": 1}})
    sd = m.state_dict()
    load_weights_strict(m, sd, "ok.safetensors")
    bad = dict(sd)
    bad.pop("fc2.bias")
    with pytest.raises(RPGInputError, match=r"x\.safetensors.*missing keys.*fc2\.bias"):
        load_weights_strict(m, bad, "x.safetensors")
    bad = {**sd, "extra": torch.zeros(1)}
    with pytest.raises(RPGInputError, match="unexpected keys"):
        load_weights_strict(m, bad, "x.safetensors")
    bad = {**sd, "fc2.weight": torch.zeros(5, 20)}
    with pytest.raises(RPGInputError, match="shape mismatches.*fc2.weight"):
        load_weights_strict(m, bad, "x.safetensors")

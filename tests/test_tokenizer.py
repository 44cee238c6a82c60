import math

import pytest
import torch
from torch import nn

from rpg.errors import RPGInputError
from rpg.generator.tokenizer import ParamTokenizer, _channel_chunks, check_compatible


def _zoo(model: nn.Module, n: int = 2):
    """A small zoo around a model: checkpoint 0 is the model itself (exact zeros/ones stay in it)."""
    sd = model.state_dict()
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(i)
        noisy = {k: (v + 0.01 * torch.randn(v.shape, generator=g) if i and v.is_floating_point() else v.clone())
                 for k, v in sd.items()}
        out.append((f"c{i}", noisy))
    return out


def _models():
    timm = pytest.importorskip("timm")
    from rpg.zoos.digits import DigitsCNN

    class CNNs(nn.Module):  # the paper's 2,864-parameter CNN(s) (the official dataset/cifar10_cnnsmall/model.py)
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 5), nn.Conv2d(8, 6, 5), nn.Conv2d(6, 4, 2)
            self.f1, self.f2 = nn.Linear(36, 20), nn.Linear(20, 10)

    return {
        "resnet18": timm.create_model("resnet18", pretrained=False),
        "vit_tiny_patch16_224": timm.create_model("vit_tiny_patch16_224", pretrained=False),
        "convnext_atto": timm.create_model("convnext_atto", pretrained=False),
        "cnn_s": CNNs(),
        "digits": DigitsCNN(),
    }


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.mark.parametrize("strategy,d", [("layer", 8192), ("flatten", 4096), ("channel", 768)])
def test_roundtrip_bit_exact(models, strategy, d):
    for name, model in models.items():
        zoo = _zoo(model)
        tok = ParamTokenizer.fit(zoo, d, strategy)
        for ckpt, sd in zoo:
            back = tok.detokenize(tok.tokenize(sd))
            assert list(back) == list(sd), name
            for k in sd:
                assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), (name, strategy, ckpt, k)


def test_cnn_s_has_2864_params(models):
    assert sum(p.numel() for p in models["cnn_s"].parameters()) == 2864


def test_layouts_match_reference(models):
    # token counts of ViT-Tiny from the official structure caches (official dataset/dataset.py, `layer_to_token`)
    vit = models["vit_tiny_patch16_224"].state_dict()
    zoo = [("a", vit)]
    assert ParamTokenizer.fit(zoo, 8192, "layer").num_tokens == 808
    assert ParamTokenizer.fit(zoo, 4096, "flatten").num_tokens == 1396
    assert ParamTokenizer.fit(zoo, 768, "channel").num_tokens == 7653
    assert ParamTokenizer.fit(zoo, 8192, "layer").num_params == 5_717_416


def test_layer_tokens_never_cross_tensors_and_padding_is_masked():
    from rpg.zoos.digits import DigitsCNN
    tok = ParamTokenizer.fit(_zoo(DigitsCNN()), 256)
    assert tok.num_tokens == 17
    sizes = [lay.numel for lay in tok.layers]
    assert tok.mask.sum().item() == sum(sizes)
    # one token per started block of 256 in every tensor
    assert tok.num_tokens == sum(math.ceil(s / 256) for s in sizes)
    x = tok.tokenize(_zoo(DigitsCNN())[1][1])
    assert torch.all(x[~tok.mask] == 0)
    # layer / token-in-layer ids for the position embedding
    assert tok.layer_ids.tolist()[:4] == [0, 1, 2, 2] and tok.token_ids.tolist()[:5] == [0, 0, 0, 1, 2]


def test_normalisation_uses_zoo_averaged_stats():
    torch.manual_seed(0)
    sds = [(f"c{i}", {"w": torch.randn(64, 8) * (i + 1) + i}) for i in range(3)]
    tok = ParamTokenizer.fit(sds, 128)
    lay = tok.layers[0]
    assert lay.mean == pytest.approx(sum(float(sd["w"].double().mean()) for _, sd in sds) / 3)
    assert lay.std == pytest.approx(sum(float(sd["w"].double().std()) for _, sd in sds) / 3)


def test_bn_statistics_generated_and_counter_copied():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    m[1].running_var.uniform_(0.5, 2.0)
    m[1].num_batches_tracked.fill_(7)
    tok = ParamTokenizer.fit(_zoo(m), 16)
    keys = {lay.key: lay.kind for lay in tok.layers}
    assert keys["1.running_var"] == "logvar" and keys["1.running_mean"] == "normal"
    assert "1.num_batches_tracked" in tok.copied
    back = tok.detokenize(tok.tokenize(m.state_dict()))
    assert back["1.num_batches_tracked"].item() == 7 and back["1.num_batches_tracked"].dtype == torch.int64


def test_channel_chunks_pack_whole_rows():
    assert _channel_chunks((576, 192), 768) == [768] * 144          # 4 rows of qkv per token
    assert _channel_chunks((192, 768), 768) == [768] * 192
    assert _channel_chunks((1, 197, 192), 768) == [192] * 197       # 197 is prime: one row per token
    assert _channel_chunks((192,), 768) == [192]


def test_save_load_roundtrip(tmp_path):
    from rpg.zoos.digits import DigitsCNN
    zoo = _zoo(DigitsCNN())
    tok = ParamTokenizer.fit(zoo, 256, "channel")
    tok.save(tmp_path / "t.safetensors")
    tok2 = ParamTokenizer.load(tmp_path / "t.safetensors")
    x = tok.tokenize(zoo[1][1])
    assert torch.equal(tok2.tokenize(zoo[1][1]), x)
    assert all(torch.equal(a, b) for a, b in zip(tok2.detokenize(x).values(), zoo[1][1].values()))


def test_incompatible_checkpoints_name_file_and_key():
    a = {"w": torch.zeros(3, 3), "b": torch.zeros(3)}
    with pytest.raises(RPGInputError, match="ck2.*'w'.*shape"):
        check_compatible("ck1", a, "ck2", {"w": torch.zeros(3, 4), "b": torch.zeros(3)})
    with pytest.raises(RPGInputError, match="ck2.*'b'.*missing"):
        check_compatible("ck1", a, "ck2", {"w": torch.zeros(3, 3)})


def _bn_zoo(n: int = 6):
    """Checkpoints of a conv+BN net whose running statistics differ widely across channels but little across
    checkpoints (one training trajectory), as in the mini ResNet-18 zoo."""
    m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16))
    g = torch.Generator().manual_seed(0)
    base_mean, base_var = torch.randn(16, generator=g) * 3, torch.rand(16, generator=g) * 4 + 0.1
    out = []
    for i in range(n):
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        sd["1.running_mean"] = base_mean + 0.01 * torch.randn(16, generator=g)
        sd["1.running_var"] = base_var * (1 + 0.01 * torch.randn(16, generator=g))
        out.append((f"c{i}", sd))
    return out


def test_centred_roundtrip_bit_exact(models):
    model = models["resnet18"]
    zoo = _zoo(model, 3)
    tok = ParamTokenizer.fit(zoo, 8192, "layer", center=("running_mean", "running_var"))
    assert set(tok.centers) == {k for k in model.state_dict() if k.endswith(("running_mean", "running_var"))}
    for ckpt, sd in zoo:
        back = tok.detokenize(tok.tokenize(sd))
        for k in sd:
            assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), (ckpt, k)


def test_centred_statistics_are_per_element_with_the_pooled_residual_std():
    zoo = _bn_zoo()
    tok = ParamTokenizer.fit(zoo, 16, center=("running_mean",))
    x = torch.stack([sd["1.running_mean"].double() for _, sd in zoo])       # (N, 16)
    lay = {layer.key: layer for layer in tok.layers}["1.running_mean"]
    assert torch.allclose(tok.centers["1.running_mean"], x.mean(0))
    assert lay.mean == 0.0
    assert lay.std == pytest.approx(float(((x - x.mean(0)) ** 2).sum(0).div(len(x) - 1).mean().sqrt()))
    # the normalised zoo has mean 0 per element and unit pooled variance
    flat = torch.stack([tok.normalize(sd) for _, sd in zoo])
    off = tok.offsets[[layer.key for layer in tok.layers].index("1.running_mean")]
    part = flat[:, off:off + 16]
    assert part.mean(0).abs().max() < 1e-9
    assert float(part.var(0).mean()) == pytest.approx(1.0)


def test_centring_shrinks_a_token_error_to_the_zoo_spread():
    """The same error in token space moves a centred statistic by a fraction of the zoo's spread between
    checkpoints, and an uncentred one by a fraction of the spread across channels (far wider)."""
    zoo = _bn_zoo()
    errors = {}
    for center in ((), ("running_mean", "running_var")):
        tok = ParamTokenizer.fit(zoo, 16, center=center)
        t = tok.tokenize(zoo[0][1])
        back = tok.detokenize(t + 0.1 * tok.mask)                             # every real value off by 0.1
        errors[center] = {k: float((back[k] - zoo[0][1][k]).abs().max()) for k in ("1.running_mean", "1.running_var")}
    between = float(torch.stack([sd["1.running_mean"] for _, sd in zoo]).std(0).mean())
    centred, plain = errors[("running_mean", "running_var")], errors[()]
    assert centred["1.running_mean"] < 0.2 * between < plain["1.running_mean"]
    assert centred["1.running_var"] < plain["1.running_var"] / 10


def test_centred_tokenizer_save_load(tmp_path):
    zoo = _bn_zoo()
    tok = ParamTokenizer.fit(zoo, 16, center=("running_var",))
    tok.save(tmp_path / "t.safetensors")
    tok2 = ParamTokenizer.load(tmp_path / "t.safetensors")
    assert list(tok2.centers) == ["1.running_var"]
    x = tok.tokenize(zoo[2][1])
    assert torch.equal(tok2.tokenize(zoo[2][1]), x)
    assert all(torch.equal(a, b) for a, b in zip(tok2.detokenize(x).values(), zoo[2][1].values()))

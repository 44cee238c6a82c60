"""Generator structure against the official modules, BatchNorm folding, condition variants trained and
sampled end to end, and the memory-mapped token path."""

import pytest
import torch
from test_core import fast_cfg, small_zoo  # noqa: F401  (small_zoo is a fixture)

from rpg import io
from rpg.errors import RPGInputError
from rpg.generator import training
from rpg.generator.denoiser import ConditionalUNet1D, fold_batchnorm
from rpg.generator.embeddings import sinusoid_1d, sinusoid_2d
from rpg.generator.model import RPG
from rpg.generator.recurrent import RecurrentModel
from rpg.generator.sampling import load_run, sample_tokens

TORCH_THREADS = 1
D = 64  # fast_cfg: token size and recurrent width


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------- official structure
def test_transformer_ablation_has_the_official_parameters():
    """Official `model/transformer.py`: per layer LN -> bias-free qkv -> attention with `to_out` = Identity
    (heads x dim_head = d_model), then FF = LN -> Linear(d, ff) -> GELU -> Linear(ff, d)."""
    ff = 128
    cfg = fast_cfg(**{"recurrent.kind": "transformer", "recurrent.n_heads": "4", "recurrent.ff_dim": str(ff)})
    m = RecurrentModel(cfg.recurrent)
    per_layer = {"norm1.weight": D, "norm1.bias": D, "qkv.weight": 3 * D * D,
                 "ff.0.weight": D, "ff.0.bias": D, "ff.1.weight": ff * D, "ff.1.bias": ff,
                 "ff.3.weight": D * ff, "ff.3.bias": D}
    expect = {f"layers.{i}.{k}": v for i in range(2) for k, v in per_layer.items()}
    assert {n: p.numel() for n, p in m.named_parameters()} == expect


def test_no_recurrence_ablation_is_a_bias_free_gated_mlp():
    """Official `model/gatemlp.py`: proj3(proj1(x) * sigmoid(proj2(x))) -> LayerNorm, expand 2, Linears
    without bias; no mixing between tokens."""
    m = RecurrentModel(fast_cfg(**{"recurrent.kind": "none"}).recurrent).eval()
    per_layer = {"proj1.weight": 2 * D * D, "proj2.weight": 2 * D * D, "proj3.weight": D * 2 * D,
                 "norm.weight": D, "norm.bias": D}
    expect = {f"layers.{i}.{k}": v for i in range(2) for k, v in per_layer.items()}
    assert {n: p.numel() for n, p in m.named_parameters()} == expect
    x = torch.randn(1, 5, D)
    x2 = x.clone()
    x2[0, 2] += 1.0
    changed = (m(x) - m(x2)).abs().amax(-1)[0] > 0
    assert changed.tolist() == [False, False, True, False, False]     # per-token: no state transition


@pytest.mark.parametrize("kind", ["mamba", "lstm", "none"])
def test_prototype_chunks_carry_the_recurrent_state(kind):
    """The recurrent pass over segments of 3 tokens, carrying each layer's state, equals one pass over all 11."""
    torch.manual_seed(0)
    m = RecurrentModel(fast_cfg(**{"recurrent.kind": kind}).recurrent).double().eval()
    e = torch.randn(2, 11, D, dtype=torch.float64)
    with torch.no_grad():
        whole, seg = m(e), m(e, segment=3)
    assert torch.allclose(seg, whole, rtol=0, atol=1e-10)
    e2 = e.clone()
    e2[:, 4] += 1.0
    with torch.no_grad():   # ...and the state really crosses segments: token 4 moves the later ones
        later = (m(e2, segment=3) - seg)[:, 6:].abs().amax().item()
    assert (later > 1e-6) == (kind != "none")


def test_prototype_chunks_refuse_attention():
    m = RecurrentModel(fast_cfg(**{"recurrent.kind": "transformer", "recurrent.n_heads": "4"}).recurrent)
    with pytest.raises(RPGInputError, match="prototype chunk 3.*transformer"):
        m(torch.randn(1, 7, D), segment=3)
    with pytest.raises(RPGInputError, match="prototype chunk 0"):
        m(torch.randn(1, 7, D), segment=0)


@pytest.mark.parametrize("strategy,position,expect", [
    ("flatten", "auto", "1d"), ("layer", "auto", "2d"), ("channel", "auto", "2d"), ("flatten", "2d", "2d")])
def test_flatten_tokens_default_to_the_1d_position_embedding(strategy, position, expect):
    """The official "direct flatten" ablation pairs cross-layer tokens with the 1D sinusoid; an explicit
    condition.position still wins."""
    cfg = fast_cfg(**{"tokenizer.strategy": strategy, "condition.position": position})
    layer_ids, token_ids = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 0, 0])
    model = RPG(cfg, layer_ids, token_ids, 2)
    want = sinusoid_1d(4, D) if expect == "1d" else sinusoid_2d(layer_ids, token_ids, D)
    assert torch.equal(model.inputs.pe, want)


def test_task_model_has_no_permutation_state_and_no_bias():
    """Official ClassConditionMambaDiffusion: e = PE + gated task term. Training passes checkpoint indices,
    sampling none: both must give the same prototypes, and nothing else may enter the input."""
    cfg = fast_cfg(**{"condition.task": "gated", "condition.task_hidden": "8", "condition.task_tokens": "2"})
    L = 5
    model = RPG(cfg, torch.zeros(L, dtype=torch.long), torch.arange(L), 4).eval()
    names = [n for n, _ in model.inputs.named_parameters()]
    assert not [n for n in names if "bias" == n or "permutation" in n], names
    task = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1, 1, 0]], dtype=torch.float32).expand(2, -1)
    with torch.no_grad():
        e_train = model.inputs(2, torch.tensor([1, 3]), task)
        e_sample = model.inputs(2, None, task)
    assert torch.equal(e_train, e_sample)
    assert torch.equal(e_sample[0, :L - 2], model.inputs.pe[:L - 2])   # ungated positions: the PE alone
    plain = RPG(fast_cfg(), torch.zeros(L, dtype=torch.long), torch.arange(L), 4)
    assert n_params(plain.inputs) == D + 4 * D           # the unconditional model keeps bias + permutation table


# ---------------------------------------------------------------------------------------------- BatchNorm folding
def test_fold_batchnorm_equals_the_unfolded_network():
    torch.manual_seed(0)
    unet = ConditionalUNet1D(fast_cfg().denoiser, 32, 16)
    unet.train()
    with torch.no_grad():                     # non-trivial running statistics and affine parameters
        for _ in range(3):
            unet(torch.randn(64, 32) * 2 + 0.5, torch.randint(0, 1000, (64,)), torch.randn(64, 16))
        for bn in unet.norms:
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
    unet.eval()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    folded = fold_batchnorm(unet)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())    # folding copies the convs...
    assert folded.cond_embed.weight is unet.cond_embed.weight                     # ...and shares the rest
    x, t, c = torch.randn(10, 32), torch.randint(0, 1000, (10,)), torch.randn(10, 16)
    with torch.no_grad():
        ref, got = unet(x, t, c), folded(x, t, c)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    assert unet.training is False and isinstance(unet.norms[0], torch.nn.BatchNorm1d)  # the original is untouched


# ---------------------------------------------------------------------------------------------- variants end to end
def mlp():
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


@pytest.fixture
def mlp_zoo(tmp_path):
    """No BatchNorm: a generator trained for a few steps can emit huge running_var values, whose exp
    overflows (faithfully: the official inverse only clips from below)."""
    torch.manual_seed(0)
    net, d = mlp(), tmp_path / "mlp_zoo"
    for i in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
        io.save_state_dict(d / f"ckpt_{i:02d}.safetensors", net.state_dict())
    return d


@pytest.mark.parametrize("override", [
    {"condition.position": "1d"}, {"condition.position": "learnable"}, {"condition.position": "none"},
    {"condition.permutation": "onehot"}, {"condition.permutation": "none"}])
def test_condition_variants_train_and_sample(mlp_zoo, tmp_path, override):
    run = tmp_path / "run"
    training.train(fast_cfg(**override), mlp_zoo, run, quiet=True)
    model, tok, meta = load_run(run)                 # strict load of the trained generator
    key, value = next(iter(override.items()))
    if key == "condition.position":
        assert model.inputs.position == value
        assert isinstance(model.inputs.pe, torch.nn.Parameter) == (value == "learnable")
    else:
        assert (model.inputs.permutation is None) == (value == "none")
    if value == "learnable":   # the learnable PE was trained away from its 2D sinusoid initialisation
        assert not torch.equal(model.inputs.pe.detach(), sinusoid_2d(tok.layer_ids, tok.token_ids, D))
    gen = sample_tokens(model, 2, generator=torch.Generator().manual_seed(0))
    for x in gen:
        sd = tok.detokenize(x)
        assert all(torch.isfinite(v).all() for v in sd.values() if v.is_floating_point())
        mlp().load_state_dict(sd, strict=True)


# ---------------------------------------------------------------------------------------------- memory-mapped tokens
def test_memory_mapped_tokens_train_like_tokens_in_ram(small_zoo, tmp_path, monkeypatch):  # noqa: F811
    cfg = fast_cfg(**{"train.batch_size": "4"})
    training.train(cfg, small_zoo, tmp_path / "ram", quiet=True)
    monkeypatch.setattr(training, "_IN_MEMORY_BYTES", 0)      # every token array stays memory-mapped
    training.train(cfg, small_zoo, tmp_path / "mmap", quiet=True)
    a = (tmp_path / "ram" / "generator.safetensors").read_bytes()
    b = (tmp_path / "mmap" / "generator.safetensors").read_bytes()
    assert a == b

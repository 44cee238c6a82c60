import importlib.util
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _originals_cache(tmp_path_factory):
    """`rpg evaluate` caches the originals' scores (rpg.evaluation.cache); the suite keeps its own cache, so
    it neither reads a developer's ~/.cache nor leaves files there (subprocesses inherit the variable)."""
    old = os.environ.get("RPG_CACHE_DIR")
    os.environ["RPG_CACHE_DIR"] = str(tmp_path_factory.mktemp("rpg_cache"))
    yield
    if old is None:
        os.environ.pop("RPG_CACHE_DIR", None)
    else:
        os.environ["RPG_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _threads(request):
    """The suite is sized for 2 cores. A test module can ask for fewer with TORCH_THREADS (tiny models run
    faster on one thread, and oversubscribed OpenMP threads are far slower on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(getattr(request.module, "TORCH_THREADS", 2))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits_bench():
    """benchmarks/digits_zoo.py, the collector of the sklearn-digits benchmark zoos (a script, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "digits_zoo.py"
    spec = importlib.util.spec_from_file_location("_bench_digits_zoo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits_zoo(tmp_path_factory, digits_bench):
    """The 2.9k-parameter sklearn-digits CNN zoo (the benchmark fixture), 50 checkpoints."""
    out = tmp_path_factory.mktemp("zoo") / "digits_2k9"
    digits_bench.collect("digits_2k9", out, num=50)
    return out

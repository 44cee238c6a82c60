import os

import pytest
import torch

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _threads(request):
    """The suite is sized for 2 cores. A test module can ask for fewer with TORCH_THREADS (tiny models run
    faster on one thread, and oversubscribed OpenMP threads are far slower on a shared machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(getattr(request.module, "TORCH_THREADS", 2))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def digits_zoo(tmp_path_factory):
    """The 2.9k-parameter sklearn-digits CNN zoo (the benchmark fixture), 50 checkpoints."""
    from rpg.zoos import digits as zoo_digits
    out = tmp_path_factory.mktemp("zoo") / "digits_2k9"
    zoo_digits.collect("digits_2k9", out, num=50)
    return out

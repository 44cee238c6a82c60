"""Loading the mmsegmentation stack once: the `mmcv.ops` stand-in, mmseg's registries and a safe checkpoint loader.

mmengine's local-file checkpoint loader calls `torch.load(path)` without `weights_only`: the pinned torch (>= 2.6)
then defaults to `weights_only=True` and refuses mmseg checkpoints whose `meta` holds numpy scalars/arrays
(UnpicklingError), and the usual workaround, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, unpickles arbitrary code. We
register our own loader for local paths instead (`safe_load`): safetensors files directly, pickles with
`weights_only=True` plus an allow-list of the numpy types that checkpoint metadata holds. Every mmengine path that
reads a local checkpoint (`load_checkpoint`, `init_cfg=dict(type='Pretrained', ...)`, `load_from`) goes through it.

mmengine 0.10.7 also resolves a config's package-scoped base (`_base_ = ["mmseg::..."]`, how our configs extend
mmseg's own) with `pkg_resources`, which setuptools >= 81 no longer ships; `_patch_package_lookup` gives it the same
two lookups through importlib.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from pathlib import Path

import torch

from rpg.errors import RPGInputError

_LOADED = False
INSTALL_HINT = ("the segmentation stack is an optional extra: pip install -r requirements-seg.txt "
                "(or pip install -e .[seg]); see docs/segmentation.md")


def _numpy_safe_globals() -> list:
    """The numpy globals that pickled checkpoint metadata needs (arrays, scalars, dtypes), nothing executable."""
    import numpy as np

    out = [np.ndarray, np.dtype, np.core.multiarray._reconstruct, np.core.multiarray.scalar]
    out += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "int8", "uint8",
                                         "bool", "<U1", "O")]
    return out


def safe_load(filename: str | os.PathLike, map_location=None) -> dict:
    """A local checkpoint as a dict, loaded safely (safetensors, or torch.load(weights_only=True))."""
    path = Path(os.path.expanduser(str(filename)))
    if not path.is_file():
        raise FileNotFoundError(f"{path} can not be found.")
    if path.suffix == ".safetensors":
        from rpg.io import load_state_dict

        return {"state_dict": load_state_dict(path)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)   # numpy.core is deprecated in numpy 2; the names still hold
        allowed = _numpy_safe_globals()
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location=map_location, weights_only=True)


def _is_installed(package: str) -> bool:
    import importlib.metadata
    import importlib.util

    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec(package)
        return spec is not None and spec.origin is not None


def _installed_path(package: str) -> str:
    """Folder of an installed distribution's top-level module (`mmsegmentation` -> .../mmseg)."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        try:   # a distribution named unlike its module: its top_level.txt names the module
            top = (importlib.metadata.distribution(package).read_text("top_level.txt") or "").split()
        except importlib.metadata.PackageNotFoundError:
            top = []
        spec = importlib.util.find_spec(top[0]) if top else None
    if spec is None or spec.origin is None:
        raise RPGInputError(f"segmentation: package {package!r} is not installed (a config names it as {package}::)")
    return os.path.dirname(spec.origin)


def _patch_package_lookup() -> None:
    """mmengine's package lookups without pkg_resources (only where pkg_resources is missing)."""
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    import mmengine.config.config as config_module
    import mmengine.utils.package_utils as package_utils

    for module in (config_module, package_utils):
        module.is_installed = _is_installed
        module.get_installed_path = _installed_path


@contextlib.contextmanager
def quiet(level: int = logging.WARNING):
    """mmengine's 'current' logger at `level` inside the block (IoUMetric prints a per-class table at INFO, and
    warns that it has no metric-name prefix, which we do not want)."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def load() -> None:
    """Import mmsegmentation (with the `mmcv.ops` stand-in where only mmcv-lite is installed), register its modules
    in the default scope and route mmengine's local checkpoint reads through `safe_load`. Idempotent."""
    global _LOADED
    if _LOADED:
        return
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError as e:
        raise RPGInputError(f"segmentation: {e.name} is not installed; {INSTALL_HINT}") from None
    from rpg.segmentation import mmcv_ops

    # known, harmless warnings of the pinned stack, once per model build otherwise: mmcv-lite has no deformable
    # attention (no model of ours uses it); mmseg suggests a 1-channel sigmoid head for 2 classes (we keep its
    # default softmax head, as the paper's configs), deprecates its own build_loss, and notes avg_non_ignore
    for message in ("Fail to import ``MultiScaleDeformableAttention``", "For binary segmentation, we suggest",
                    "``build_loss`` would be deprecated", "Default ``avg_non_ignore`` is False"):
        warnings.filterwarnings("ignore", message=re.escape(message))
    mmcv_ops.install()
    try:
        from mmseg.utils import register_all_modules
    except ImportError as e:
        raise RPGInputError(f"segmentation: cannot import mmsegmentation ({e}); {INSTALL_HINT}") from None
    from mmengine.runner.checkpoint import CheckpointLoader

    _patch_package_lookup()
    register_all_modules(init_default_scope=True)
    from mmengine.logging import MMLogger

    # init_weights reports every tensor at INFO; RPG's logs keep warnings only
    MMLogger.get_instance("rpg-segmentation", log_level="WARNING")
    CheckpointLoader.register_scheme(prefixes="", loader=safe_load, force=True)
    _LOADED = True

"""A stand-in for `mmcv.ops` where only mmcv-lite (no compiled ops) is installed.

mmsegmentation 1.2.2 imports a few names from `mmcv.ops` at module level (`point_sample` in
mmseg/utils/mask_classification.py and mmseg/models/utils/point_sample.py, `sigmoid_focal_loss` in
mmseg/models/losses/focal_loss.py); the others it guards with `except ModuleNotFoundError`. Without
`mmcv._ext` the real `mmcv.ops` package cannot be imported, so neither can `mmseg.models`.

This module is a STAND-IN covering only names the models we build never call: the UperNet / FCN heads, the
VisionTransformer backbone and the cross-entropy loss of our configs use no `mmcv.ops` op. Every name is a stub
that records the call in `CALLS` and raises `NotImplementedError`; any other name raises `ModuleNotFoundError`
(what mmseg's guarded imports expect). tests/test_segmentation.py runs a training step and a prediction of the
mini model and asserts `CALLS` stays empty; the paper model is built from the same module types (VisionTransformer,
MultiLevelNeck, UPerHead, FCNHead, CrossEntropyLoss). A config that needs a compiled op (PointRend, focal loss,
CCNet, ...) fails loudly at its first call instead of running something else. With the official compiled mmcv installed
(docs/segmentation.md), `install()` leaves the real `mmcv.ops` in place.
"""

from __future__ import annotations

import sys
import types

# names mmseg imports unguarded at module level; each becomes a stub
STUBBED = ("point_sample", "sigmoid_focal_loss")
CALLS: list[str] = []          # names of stubs that were called (must stay empty)
_NAME = "mmcv.ops"


def _stub(name: str):
    def op(*args, **kwargs):
        CALLS.append(name)
        raise NotImplementedError(f"mmcv.ops.{name} is a stand-in (rpg.segmentation.mmcv_ops): this model needs "
                                  "the compiled mmcv; install mmcv==2.1.0 instead of mmcv-lite (docs/segmentation.md)")
    op.__name__ = name
    op.__qualname__ = name
    return op


def _missing(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    raise ModuleNotFoundError(f"mmcv.ops.{name}: compiled mmcv ops are not installed (mmcv-lite); "
                              "rpg.segmentation.mmcv_ops stands in for the names listed in STUBBED only")


def installed() -> bool:
    """Whether `mmcv.ops` is this stand-in (False: the real compiled ops, or nothing installed yet)."""
    return getattr(sys.modules.get(_NAME), "__rpg_stand_in__", False)


def install() -> bool:
    """Make `import mmcv.ops` work: keep the real ops when they import, else register the stand-in.
    Returns True when the stand-in is in use."""
    import mmcv

    if installed():
        return True
    try:
        import mmcv.ops  # noqa: F401  the official, compiled mmcv
        return False
    except ImportError:
        # a failed import leaves half-initialised submodules behind; drop them before registering ours
        for key in [k for k in sys.modules if k == _NAME or k.startswith(_NAME + ".")]:
            del sys.modules[key]
    ops = types.ModuleType(_NAME, __doc__)
    ops.__path__ = []            # a package, so `from mmcv.ops import x` never looks for files
    ops.__rpg_stand_in__ = True
    for name in STUBBED:
        setattr(ops, name, _stub(name))
    ops.__getattr__ = _missing
    sys.modules[_NAME] = ops
    mmcv.ops = ops
    return True

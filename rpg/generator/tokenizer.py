"""Parameter tokenization (paper §2.2; official dataset/dataset.py).

A state_dict becomes a sequence of L tokens of d values:

1. Every floating-point tensor with more than one element is *generated* (BatchNorm running statistics
   included); integer tensors (``num_batches_tracked``) and scalars are *copied* from the first checkpoint.
2. Each generated tensor is z-normalised with per-layer constants that are averages over the whole zoo of the
   per-checkpoint mean and (unbiased) std, so the differences between checkpoints survive. ``running_var``
   first goes through ``log(v / pre_mean + 0.05)`` with ``pre_mean = 0.95 * mean(v)`` (official code).
   A *centred* tensor (``center``, our switch, not in the paper) is instead normalised per element: minus the
   zoo's mean of that element, divided by the residuals' std pooled over the tensor. For tensors the zoo barely
   moves (BatchNorm running statistics) the per-layer std is the spread *across* elements, far wider than the
   spread between checkpoints, and the generator's error, a fraction of that std, is what lands on the network.
3. The normalised values are cut into tokens by one of three strategies (paper Fig. 4):
   ``layer`` (RPG: each tensor flattened and cut into d-sized tokens, last one padded; tokens never cross
   tensors), ``flatten`` (p-diff: all tensors concatenated, only the tail padded) and ``channel`` (SANE-style:
   whole output channels packed per token, recursing into channels larger than d).

Every strategy reduces to a list of *segments*: token t holds ``length[t]`` consecutive values of the
concatenated normalised vector starting at ``start[t]``; the rest of the token is padding, marked by the mask
and never part of the loss. Tokenizing is one gather, detokenizing one scatter.

The statistics and layout are saved with the trained generator (`state_dict()` / `from_state_dict()`, plain
tensors + JSON metadata), so generation needs no checkpoint on disk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from rpg.errors import RPGInputError

NORMAL, LOGVAR = "normal", "logvar"
_STD_FLOOR = 1e-12  # a constant tensor (std 0) is normalised with std 1 instead of dividing by zero


@dataclass(frozen=True)
class Layer:
    """One generated tensor: its key, shape and normalisation constants."""
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: str          # NORMAL | LOGVAR (BatchNorm running_var)
    mean: float
    std: float
    pre_mean: float    # LOGVAR only (0.0 otherwise)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def is_generated(key: str, t: torch.Tensor) -> bool:
    """Which tensors RPG generates: floating point, more than one element, not a batch counter."""
    return t.is_floating_point() and t.numel() > 1 and "num_batches_tracked" not in key


def _channel_chunks(shape: tuple[int, ...], d: int) -> list[int]:
    """Token lengths for one tensor under the by-channel strategy (official `layer_to_token`, granularity 2)."""
    numel = math.prod(shape)
    if numel <= d:
        return [numel]
    rows = shape[0]
    row = numel // rows
    if row <= d:
        # pack rows/i whole rows per token, with i the smallest divisor of `rows` that makes them fit
        i = max(1, int(rows / (d / row)))
        while rows % i or row * (rows // i) > d:
            i += 1
        return [row * (rows // i)] * i
    inner = _channel_chunks(tuple(shape[1:]), d)
    return inner * rows


class ParamTokenizer:
    """Maps state_dicts of one architecture to [L, d] token tensors and back."""

    def __init__(self, layers: list[Layer], copied: dict[str, torch.Tensor], key_order: list[str],
                 token_size: int, strategy: str = "layer", centers: dict[str, torch.Tensor] | None = None):
        if strategy not in ("layer", "flatten", "channel"):
            raise RPGInputError(f"tokenizer.strategy={strategy!r}: expected layer, flatten or channel")
        self.layers, self.copied, self.key_order = layers, copied, key_order
        # key -> the zoo's per-element mean (float64, flat, after the log transform) of a centred tensor
        self.centers = {k: v.to(torch.float64).reshape(-1) for k, v in (centers or {}).items()}
        self.token_size, self.strategy = token_size, strategy
        self._build_layout()

    # ---------------------------------------------------------------------------------------- layout
    def _build_layout(self) -> None:
        d = self.token_size
        numels = [layer.numel for layer in self.layers]
        offsets = [0]
        for n in numels:
            offsets.append(offsets[-1] + n)
        self.num_params = offsets[-1]
        lengths, layer_ids, token_ids = [], [], []
        # groups: (flat offset, numel, tokens, chunk length): `numel` values fill `tokens` rows of `chunk`
        # values each (the last row may be short); every strategy is a list of such groups
        self.groups: list[tuple[int, int, int, int]] = []
        if self.strategy == "flatten":
            n_tok = -(-self.num_params // d)
            self.groups.append((0, self.num_params, n_tok, d))
            starts = [t * d for t in range(n_tok)]
            lengths = [min(d, self.num_params - s) for s in starts]
            # layer of a token = layer of its first value; token id counts tokens starting in that layer
            bounds = torch.tensor(offsets[1:])
            layer_ids = torch.searchsorted(bounds, torch.tensor(starts), right=True).tolist()
            seen: dict[int, int] = {}
            for li in layer_ids:
                token_ids.append(seen.get(li, 0))
                seen[li] = seen.get(li, 0) + 1
        else:
            for li, layer in enumerate(self.layers):
                if self.strategy == "layer":
                    chunks = [min(d, layer.numel - s) for s in range(0, layer.numel, d)]
                else:
                    chunks = _channel_chunks(layer.shape, d)
                pos = offsets[li]
                self.groups.append((pos, layer.numel, len(chunks), chunks[0]))
                lengths += chunks
                layer_ids += [li] * len(chunks)
                token_ids += range(len(chunks))
                assert sum(chunks) == layer.numel, "chunking must cover the tensor exactly"
        self.offsets = offsets
        self.lengths = torch.tensor(lengths, dtype=torch.long)       # (L,)
        self.layer_ids = torch.tensor(layer_ids, dtype=torch.long)   # (L,) generated-layer index i
        self.token_ids = torch.tensor(token_ids, dtype=torch.long)   # (L,) token index j within its layer
        self.mask = torch.arange(d)[None, :] < self.lengths[:, None]  # (L, d) True = real value

    @property
    def num_tokens(self) -> int:
        return len(self.lengths)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    # ---------------------------------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, state_dicts: Iterable[tuple[str, dict[str, torch.Tensor]]], token_size: int,
            strategy: str = "layer", center: Iterable[str] = ()) -> ParamTokenizer:
        """Per-layer statistics averaged over a zoo. `state_dicts` yields (name, state_dict); each is seen once.
        Tensors whose key ends in `.S` for S in `center` are centred per element (module docstring)."""
        ref_name, ref = None, None
        sums: dict[str, list[float]] = {}
        suffixes = tuple(center)
        raw: dict[str, list[torch.Tensor]] = {}   # centred key -> its values in every checkpoint (small tensors)
        n = 0
        for name, sd in state_dicts:
            if ref is None:
                ref_name, ref = name, sd
                if not any(is_generated(k, v) for k, v in sd.items()):
                    raise RPGInputError(f"{name}: no floating-point tensor with more than one element to generate")
            else:
                check_compatible(ref_name, ref, name, sd)
            for k, v in sd.items():
                if not is_generated(k, v):
                    continue
                x = v.detach().double()
                pre = 0.0
                if "running_var" in k:
                    pre = 0.95 * float(x.mean())
                    if not pre > 0:   # all-zero variances: log(v / pre) is 0/0 and every loss would be NaN
                        raise RPGInputError(f"{name}: key {k!r} is a BatchNorm running_var with mean {x.mean():.3g}; "
                                            "it cannot be normalised (log(v / 0.95 mean(v))): were BN statistics "
                                            "ever updated?")
                    x = torch.log(x / pre + 0.05)
                stats = (float(x.mean()), float(x.std()), pre)
                if not all(math.isfinite(a) for a in stats):
                    raise RPGInputError(f"{name}: key {k!r} gives non-finite normalisation statistics "
                                        f"(mean, std = {stats[0]:.3g}, {stats[1]:.3g})")
                acc = sums.setdefault(k, [0.0, 0.0, 0.0])
                for j, a in enumerate(stats):
                    acc[j] += a
                if k.rsplit(".", 1)[-1] in suffixes:
                    raw.setdefault(k, []).append(v.detach().to(torch.float64).reshape(-1))
            n += 1
        if ref is None:
            raise RPGInputError("no checkpoints to fit the tokenizer on")
        layers, copied, centers = [], {}, {}
        for k, v in ref.items():
            if is_generated(k, v):
                m, s, p = (a / n for a in sums[k])
                if not (math.isfinite(m) and math.isfinite(p)):   # finite per checkpoint, overflowing in the sum
                    raise RPGInputError(f"{ref_name}: key {k!r}: the zoo average of its statistics is not finite")
                kind = LOGVAR if "running_var" in k else NORMAL
                if k in raw:
                    # the same transform as `normalize` (the zoo's pre_mean), then per-element mean and the
                    # residual std pooled over elements (unbiased; one checkpoint has none: std 1)
                    x = torch.stack(raw[k])                                   # (N, numel)
                    if kind == LOGVAR:
                        x = torch.log(x / p + 0.05)
                    centers[k] = x.mean(0)                                    # (numel,)
                    m = 0.0
                    s = float(x.var(0).mean().sqrt()) if len(x) > 1 else 1.0
                if not math.isfinite(s) or s < _STD_FLOOR:
                    s = 1.0
                layers.append(Layer(k, tuple(v.shape), v.dtype, kind, m, s, p))
            else:
                copied[k] = v.detach().clone()
        return cls(layers, copied, list(ref), token_size, strategy, centers)

    # ---------------------------------------------------------------------------------------- transforms
    def normalize(self, sd: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Concatenated normalised values of the generated tensors, (P,)."""
        parts = []
        for layer in self.layers:
            x = sd[layer.key].detach().to(torch.float64).reshape(-1)
            if layer.kind == LOGVAR:
                x = torch.log(x / layer.pre_mean + 0.05)
            # a centred tensor's mean is per element (layer.mean is 0 then)
            mean = self.centers.get(layer.key, layer.mean)
            # x/std - mean/std (not (x-mean)/std): an exact zero or a constant tensor then survives the round trip
            parts.append((x / layer.std - mean / layer.std).to(dtype))
        return torch.cat(parts)

    def tokenize(self, sd: dict[str, torch.Tensor], dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """state_dict -> (L, d) tokens; padding slots are 0 (see `mask`). float64 keeps the round trip exact."""
        flat = self.normalize(sd, dtype)                                      # (P,)
        rows = []
        for off, numel, n, c in self.groups:
            x = flat[off:off + numel]
            x = torch.nn.functional.pad(x, (0, n * c - numel)).view(n, c)     # (n, c): one token per row
            rows.append(torch.nn.functional.pad(x, (0, self.token_size - c)))  # (n, d)
        return torch.cat(rows)

    def detokenize(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """(L, d) tokens -> state_dict in the original key order and dtypes; padding is dropped."""
        if tuple(tokens.shape) != (self.num_tokens, self.token_size):
            raise ValueError(f"expected tokens of shape {(self.num_tokens, self.token_size)}, "
                             f"got {tuple(tokens.shape)}")
        parts, t = [], 0
        for _, numel, n, c in self.groups:
            parts.append(tokens[t:t + n, :c].to(torch.float64).reshape(-1)[:numel])
            t += n
        flat = torch.cat(parts)                                               # (P,)
        out: dict[str, torch.Tensor] = {}
        generated = {}
        for li, layer in enumerate(self.layers):
            mean = self.centers.get(layer.key, layer.mean)
            x = (flat[self.offsets[li]:self.offsets[li + 1]] + mean / layer.std) * layer.std
            if layer.kind == LOGVAR:
                x = torch.clamp(torch.exp(x) - 0.05, min=0.001) * layer.pre_mean
            generated[layer.key] = x.reshape(layer.shape).to(layer.dtype)
        for k in self.key_order:
            out[k] = generated[k] if k in generated else self.copied[k].clone()
        return out

    # ---------------------------------------------------------------------------------------- persistence
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors, metadata) for safetensors: statistics as float64 tensors, the layout as JSON."""
        tensors = {
            "stats": torch.tensor([[lay.mean, lay.std, lay.pre_mean] for lay in self.layers], dtype=torch.float64),
        }
        for i, k in enumerate(self.copied):
            tensors[f"copied.{i}"] = self.copied[k]
        for i, k in enumerate(self.centers):
            tensors[f"center.{i}"] = self.centers[k]
        meta = {
            "token_size": self.token_size, "strategy": self.strategy, "key_order": self.key_order,
            "layers": [[lay.key, list(lay.shape), str(lay.dtype).removeprefix("torch."), lay.kind]
                       for lay in self.layers],
            "copied": list(self.copied),
            "centered": list(self.centers),
        }
        return tensors, {"rpg_tokenizer": json.dumps(meta)}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> ParamTokenizer:
        meta = json.loads(metadata["rpg_tokenizer"])
        stats = tensors["stats"].tolist()
        layers = [Layer(k, tuple(shape), getattr(torch, dt), kind, *stats[i])
                  for i, (k, shape, dt, kind) in enumerate(meta["layers"])]
        copied = {k: tensors[f"copied.{i}"] for i, k in enumerate(meta["copied"])}
        # "centered" is absent from tokenizers written before the switch existed: none centred
        centers = {k: tensors[f"center.{i}"] for i, k in enumerate(meta.get("centered", []))}
        return cls(layers, copied, meta["key_order"], meta["token_size"], meta["strategy"], centers)

    def save(self, path: str | Path) -> None:
        from rpg.io import atomic_path, safetensors_bytes
        tensors, meta = self.state_dict()
        data = safetensors_bytes({k: v.contiguous() for k, v in tensors.items()}, meta)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)

    @classmethod
    def load(cls, path: str | Path) -> ParamTokenizer:
        """Read a saved tokenizer; a corrupt or foreign file is one line naming it (and the missing entry)."""
        from safetensors import safe_open
        if not Path(path).is_file():
            raise RPGInputError(f"{path}: tokenizer file not found")
        try:
            with safe_open(str(path), "pt") as f:
                tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
        except Exception as e:  # safetensors raises its own error types for corrupt headers
            raise RPGInputError(f"{path}: not a readable safetensors file ({type(e).__name__})") from None
        if "rpg_tokenizer" not in metadata or "stats" not in tensors:
            raise RPGInputError(f"{path}: not an RPG tokenizer (no 'rpg_tokenizer' metadata / 'stats' tensor)")
        try:
            return cls.from_state_dict(tensors, metadata)
        except RPGInputError as e:
            raise RPGInputError(f"{path}: {e}") from None
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError) as e:
            raise RPGInputError(f"{path}: corrupt tokenizer ({type(e).__name__}: {e})") from None


def check_compatible(ref_name: str, ref: dict[str, torch.Tensor], name: str, sd: dict[str, torch.Tensor]) -> None:
    """All checkpoints of a zoo must have the same keys, shapes and dtypes; the error names file and key.
    A shape or dtype mismatch is reported before a key-order difference: it is the more telling fault."""
    for k, v in sd.items():
        if k in ref and v.shape != ref[k].shape:
            raise RPGInputError(f"{name}: key {k!r} has shape {tuple(v.shape)}, "
                                f"but {tuple(ref[k].shape)} in {ref_name}")
        if k in ref and v.dtype != ref[k].dtype:
            raise RPGInputError(f"{name}: key {k!r} has dtype {v.dtype}, but {ref[k].dtype} in {ref_name}")
    if list(sd) != list(ref):
        missing = [k for k in ref if k not in sd]
        extra = [k for k in sd if k not in ref]
        if missing:
            raise RPGInputError(f"{name}: key {missing[0]!r} is missing (present in {ref_name})")
        if extra:
            raise RPGInputError(f"{name}: unexpected key {extra[0]!r} (not in {ref_name})")
        raise RPGInputError(f"{name}: keys are in a different order than in {ref_name}")

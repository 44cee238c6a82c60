"""Evaluation: the classification `Domain` (classification.py; the registry is rpg.domains), domain-agnostic summaries
and the rpg-eval/1 result (evaluate.py), IoU similarity and the noise baseline (similarity.py)."""

from rpg.evaluation.evaluate import evaluate_zoo, make_eval_fn

__all__ = ["evaluate_zoo", "make_eval_fn"]

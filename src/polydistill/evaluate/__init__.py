"""Evaluation: macro-F1 / seqeval F1 overall, per language and per seen/unseen group, with baselines."""

from polydistill.evaluate.evaluate import EvalReport, evaluate_model

__all__ = ["EvalReport", "evaluate_model"]

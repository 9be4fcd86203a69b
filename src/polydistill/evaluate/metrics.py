"""F1 as the paper reports it: macro-F1 for classification, seqeval entity F1 for NER."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polydistill.data.types import IGNORE_INDEX


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "support": len(y_true),
    }


def ner_scores(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict[str, float]:
    """seqeval overall (micro) entity F1, as in Wibowo et al. 2024, §3, plus token accuracy."""
    from seqeval.metrics import accuracy_score, f1_score

    return {
        "f1": float(f1_score(true_tags, pred_tags, zero_division=0)),
        "accuracy": float(accuracy_score(true_tags, pred_tags)),
        "support": len(true_tags),
    }


def token_predictions_to_tags(
    logits_or_preds: np.ndarray, labels: np.ndarray, label_names: Sequence[str]
) -> tuple[list[list[str]], list[list[str]]]:
    """Keep only labelled (first sub-word) positions and map ids to tag strings, per sentence."""
    preds = logits_or_preds.argmax(-1) if logits_or_preds.ndim == 3 else logits_or_preds
    true_tags, pred_tags = [], []
    for pred_row, label_row in zip(preds, labels, strict=True):
        keep = label_row != IGNORE_INDEX
        true_tags.append([label_names[i] for i in label_row[keep]])
        pred_tags.append([label_names[i] for i in pred_row[keep]])
    return true_tags, pred_tags


def scores(task: str, logits: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> dict[str, float]:
    """Scores from raw model outputs for either task type."""
    if task == "token":
        return ner_scores(*token_predictions_to_tags(logits, labels, label_names))
    preds = logits.argmax(-1) if logits.ndim == 2 else logits
    return classification_scores(labels.tolist(), preds.tolist())


def make_compute_metrics(task: str, label_names: Sequence[str]):
    """A ``compute_metrics`` for ``transformers.Trainer``; reports f1, accuracy."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        result = scores(task, np.asarray(logits), np.asarray(labels), label_names)
        result.pop("support", None)
        return result

    return compute_metrics

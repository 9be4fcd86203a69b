"""The trivial baselines of Wibowo et al. 2024, ACL Table 6.

- Classification: predict the majority class everywhere (Wibowo et al. 2024, footnote 3). The paper's figures
  (massive 7.02, tsm 33.33) are this baseline's accuracy (= micro-F1): macro-F1 of a single-class
  prediction is tiny, so both are reported.
- NER: the mean seqeval F1 of 30 runs of uniformly random tags (Wibowo et al. 2024, ACL Table 6: 1.75 on universal-ner).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from polydistill.errors import PolydistillError
from polydistill.evaluate.metrics import classification_scores, ner_scores

RANDOM_RUNS = 30


def majority_label(labels: Sequence[int]) -> int:
    """Most frequent label; ties go to the smallest id so the choice is deterministic."""
    if not len(labels):
        raise PolydistillError("Cannot pick a majority class from an empty split.")
    counts = Counter(int(y) for y in labels)
    return min(counts, key=lambda y: (-counts[y], y))


def majority_scores(y_true: Sequence[int], majority: int) -> dict[str, float]:
    return classification_scores(list(y_true), [majority] * len(y_true))


def random_tags(true_tags: Sequence[Sequence[str]], label_names: Sequence[str], rng) -> list[list[str]]:
    return [[label_names[i] for i in rng.integers(0, len(label_names), size=len(row))] for row in true_tags]


def random_ner_scores(true_tags: Sequence[Sequence[str]], label_names: Sequence[str],
                      runs: int = RANDOM_RUNS, seed: int = 0) -> dict[str, float]:
    """Mean (and std) over ``runs`` of seqeval scores for uniformly random tags per labelled word."""
    results = []
    for run in range(runs):
        rng = np.random.default_rng([seed, run])
        results.append(ner_scores(true_tags, random_tags(true_tags, label_names, rng)))
    f1s = np.array([r["f1"] for r in results])
    return {
        "f1": float(f1s.mean()),
        "f1_std": float(f1s.std()),
        "accuracy": float(np.mean([r["accuracy"] for r in results])),
        "support": len(true_tags),
        "runs": runs,
    }

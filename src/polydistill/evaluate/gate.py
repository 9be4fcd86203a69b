"""The teacher gate: a teacher that did not learn must not be distilled.

A fine-tuned teacher's dev F1 is compared with the trivial baselines on the same dev split
(Wibowo et al. 2024, ACL Table 6: the majority class for classification, uniformly random tags for
NER). A teacher that does not beat the better baseline by ``margin`` (F1 points / 100; default 5
points) is *weak*: a grid stops with one sentence before any student is built, and ``distill`` refuses
it unless asked (``--allow-weak-teacher``). A KD student of such a teacher can only imitate noise.
"""

from __future__ import annotations

from polydistill.data.types import LABEL, TAGS, TaskData
from polydistill.evaluate.baselines import majority_label, majority_scores, random_ner_scores

DEFAULT_MARGIN = 0.05


def dev_baselines(data: TaskData, split: str = "validation") -> dict[str, float]:
    """F1 of the trivial baselines on ``data``'s ``split`` (the majority is taken from train)."""
    rows = data.splits[split]
    if data.task == "sequence":
        train = data.splits.get("train")
        majority = majority_label(train[LABEL] if train is not None and len(train) else rows[LABEL])
        return {"majority": majority_scores(rows[LABEL], majority)["f1"]}
    names = data.label_names
    true_tags = [[names[i] for i in row] for row in rows[TAGS]]
    return {"random": random_ner_scores(true_tags, names, runs=5)["f1"]}


def weak_teacher_reason(dev_f1: float | None, data: TaskData, margin: float = DEFAULT_MARGIN) -> str | None:
    """Why a teacher with ``dev_f1`` on ``data`` is too weak to distil from, or None if it is not."""
    if dev_f1 is None:
        return None
    baselines = dev_baselines(data)
    best_name, best = max(baselines.items(), key=lambda item: item[1])
    if dev_f1 >= best + margin:
        return None
    hint = ("fine-tune longer or with a larger learning rate (--lr 2e-4 suits e5-size models), check that the "
            "head starts from a probe (--head-init probe), and use more training data")
    return (f"its dev F1 {100 * dev_f1:.2f} does not beat the {best_name} baseline ({100 * best:.2f}) by "
            f"{100 * margin:.0f} points; {hint}")

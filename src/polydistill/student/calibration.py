"""Calibration data for importance selection: a small seeded subset of the task, tokenised and batched.

Every importance measurement (:mod:`~polydistill.student.importance_scores`,
:mod:`~polydistill.student.layer_importance`) runs on a :class:`CalibrationSet`: a few hundred
labelled examples drawn with ``seed`` from a dataset's training split (:func:`load_calibration`,
:func:`calibration_from_task_data`), or model-input batches given in code (:func:`as_calibration`).
The set records where it came from (``description``), which ends up in the student's width plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from polydistill.data.load import load_task_data
from polydistill.data.tokenize import data_collator, tokenize_task_data
from polydistill.data.types import TaskData
from polydistill.errors import PolydistillError, require


@dataclass
class CalibrationSet:
    """Padded model-input batches (with ``labels`` when the data has them) and where they came from."""

    batches: list[dict[str, torch.Tensor]]
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return sum(int(b["input_ids"].shape[0]) for b in self.batches)


def calibration_from_task_data(data, tokenizer, size: int = 256, seed: int = 0, max_length: int = 128,
                               batch_size: int = 8, split: str = "train") -> CalibrationSet:
    """A seeded random subset of ``size`` examples of ``data`` (a TaskData), tokenised and batched."""
    require(size >= 1, f"--calibration-size must be at least 1, not {size}.")
    require(split in data.splits and len(data.splits[split]) > 0,
            f"The calibration data {data.name} has no {split!r} examples; pick a dataset/languages with a "
            f"{split} split.")
    pool = data.splits[split]
    n = min(size, len(pool))
    subset = pool.shuffle(seed=seed).select(range(n))

    small = TaskData(name=data.name, task=data.task, label_names=data.label_names,
                     splits=type(data.splits)({split: subset}), languages=data.languages)
    tokenized = tokenize_task_data(small, tokenizer, max_length=max_length)[split]
    collate = data_collator(data.task, tokenizer)
    rows = [tokenized[i] for i in range(len(tokenized))]
    batches = [dict(collate(rows[i:i + batch_size])) for i in range(0, len(rows), batch_size)]
    description = {"dataset": data.name, "languages": list(data.languages), "split": split, "examples": n,
                   "seed": seed, "max_length": max_length, "batch_size": batch_size}
    return CalibrationSet(batches=batches, description=description)


def load_calibration(tokenizer, dataset: str, languages: str | list[str] = "all", size: int = 256,
                     data_root: str | None = None, seed: int = 0, max_length: int = 128,
                     batch_size: int = 8) -> CalibrationSet:
    """Calibration batches from a dataset name, with the same flags as every other stage."""
    data = load_task_data(dataset, languages=languages, data_root=data_root, seed=seed, purpose="train")
    return calibration_from_task_data(data, tokenizer, size=size, seed=seed, max_length=max_length,
                                      batch_size=batch_size)


def as_calibration(calibration) -> CalibrationSet:
    """``calibration`` as a :class:`CalibrationSet` (a list of batches is wrapped); None is refused."""
    if isinstance(calibration, CalibrationSet):
        return calibration
    if calibration is None:
        raise PolydistillError(
            "Importance selection needs calibration data: pass --calibration-data DATASET (with "
            "--calibration-languages / --calibration-size / --data-root), or use uniform selection."
        )
    batches = list(calibration)
    require(batches and all(isinstance(b, dict) and "input_ids" in b for b in batches),
            "Calibration batches must be dicts of model inputs with input_ids.")
    return CalibrationSet(batches=batches, description={"source": "batches given in code"})


def model_inputs(batch: dict[str, torch.Tensor], with_labels: bool) -> dict[str, torch.Tensor]:
    """The entries of a calibration batch the model's forward takes (``labels`` only if asked)."""
    keep = {"input_ids", "attention_mask", "token_type_ids"} | ({"labels"} if with_labels else set())
    return {k: v for k, v in batch.items() if k in keep}

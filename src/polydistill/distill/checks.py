"""Teacher/student compatibility checks: refuse the silent failures of KD tools (SPEC "Teacher hygiene").

- **Vocabulary**: teacher and student must map the same strings to the same ids, or every KD term
  compares unrelated tokens.
- **Labels**: the teacher's label set (``config.id2label``) must equal the dataset's, in order, or
  the prediction loss teaches the wrong classes. Default names ``LABEL_0..`` (a head that never
  had names) are accepted when the count matches.
- **Untrained teacher** — heuristic, in order:
  1. a fine-tuning record in the teacher directory (``run.json`` written by ``polydistill
     finetune``, or a Trainer ``trainer_state.json``) → trained;
  2. ``config.architectures`` names no classification head (a base / MLM checkpoint) → untrained;
  3. the classifier's output layer still has its initial statistics: bias exactly zero
     everywhere and weight std within ±50 % of ``config.initializer_range`` → untrained.
     Training moves every bias off zero after the first optimiser step, and a fine-tuned head
     keeps a non-zero bias, so this fires on "base checkpoint + freshly initialised head" (the
     common mistake) and not on fine-tuned hub models, which carry no record of ours.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from polydistill.architectures import task_of
from polydistill.errors import PolydistillError
from polydistill.modeling import vocabularies_match

_DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


def check_vocabularies(teacher_tokenizer, student_tokenizer) -> None:
    if not vocabularies_match(teacher_tokenizer, student_tokenizer):
        raise PolydistillError(
            f"The teacher's and the student's tokenizers differ (vocabularies of {len(teacher_tokenizer)} and "
            f"{len(student_tokenizer)} entries do not map the same tokens to the same ids); build the student "
            "from this teacher or pass the teacher's tokenizer."
        )


def check_embedding_rows(teacher, student) -> None:
    """Without tokenizers, at least the embedding tables must have the same number of rows."""
    t_rows = teacher.get_input_embeddings().weight.shape[0]
    s_rows = student.get_input_embeddings().weight.shape[0]
    if t_rows != s_rows:
        raise PolydistillError(
            f"The teacher has {t_rows} word embeddings and the student {s_rows}: they do not share a vocabulary; "
            "build the student from this teacher."
        )


def model_label_names(config) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [id2label[i] for i in sorted(id2label, key=int)]


def labels_compatible(config, label_names: list[str]) -> bool:
    names = model_label_names(config)
    if len(names) != len(label_names):
        return False
    return names == list(label_names) or all(_DEFAULT_LABEL.match(n) for n in names)


def check_labels(config, label_names: list[str], who: str = "teacher") -> None:
    if not labels_compatible(config, label_names):
        raise PolydistillError(
            f"The {who}'s labels {model_label_names(config)} differ from the dataset's {list(label_names)}; "
            f"use a {who} fine-tuned on this dataset (polydistill finetune)."
        )


def has_finetune_record(model_dir: str | Path | None) -> bool:
    if model_dir is None:
        return False
    path = Path(model_dir)
    return (path / "run.json").is_file() or (path / "trainer_state.json").is_file()


def classifier_output_layer(model: nn.Module) -> nn.Linear | None:
    """The last Linear producing ``num_labels`` outputs (classifier / classifier.out_proj)."""
    num_labels = getattr(model.config, "num_labels", None)
    found = None
    for _, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = module
    return found


def untrained_reason(model: nn.Module, model_dir: str | Path | None = None) -> str | None:
    """Why ``model`` looks like a teacher that was never fine-tuned, or None (see module doc)."""
    if has_finetune_record(model_dir):
        return None
    config = cast("PreTrainedModel", model).config
    if task_of(model) == "base":
        return f"its config names no classification head (architectures={config.architectures})"
    layer = classifier_output_layer(model)
    if layer is None:
        return "it has no classifier layer"
    with torch.no_grad():
        bias_zero = layer.bias is not None and bool((layer.bias == 0).all())
        std = float(layer.weight.float().std())
    init_range = float(getattr(config, "initializer_range", 0.02))
    if bias_zero and 0.5 * init_range <= std <= 1.5 * init_range:
        return (
            f"its classifier still has initial statistics (zero bias, weight std {std:.4f} ≈ initializer_range "
            f"{init_range})"
        )
    return None


def check_teacher_trained(model: nn.Module, model_dir: str | Path | None = None, allow: bool = False) -> None:
    reason = untrained_reason(model, model_dir)
    if reason and not allow:
        raise PolydistillError(
            f"The teacher looks untrained: {reason}; fine-tune it first (polydistill finetune) or pass "
            "--allow-untrained-teacher."
        )

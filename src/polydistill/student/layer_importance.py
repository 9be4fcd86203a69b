"""Importance layer choice: which teacher layers a shallower student copies.

Layer choice (``--layer-map importance``): greedy backward elimination: starting from all teacher
layers, repeatedly drop the layer whose removal increases the calibration task loss least (a
bare encoder: the cosine distance of the mean-pooled last hidden state to the full teacher's), until
the student's depth is left. The loss measured is exactly that of the full-width student built by
copying the remaining layers, so the criterion is the copy-without-fine-tuning loss it optimises.

The layer list is swapped through the architecture adapter (``layers`` / ``set_layers``) and put
back afterwards; the model runs in eval mode and ties drop the lower layer index first, so the
choice is deterministic for a given calibration set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from polydistill.architectures import get_adapter, task_of
from polydistill.errors import require
from polydistill.student.calibration import as_calibration, model_inputs


@dataclass
class LayerSelection:
    """Chosen 0-indexed teacher layers and the elimination trace that chose them."""

    layers: list[int]
    criterion: str
    full_loss: float
    trace: list[dict[str, Any]]  # one entry per removed layer: removed, loss after removal
    seconds: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "criterion": self.criterion, "full_loss": self.full_loss,
                "trace": self.trace, "seconds": round(self.seconds, 2), "calibration": self.calibration}


def layer_importance(teacher, n_student: int, calibration, criterion: str = "auto") -> LayerSelection:
    """Greedy backward elimination of teacher layers by calibration loss (see the module docstring)."""
    model = teacher
    calibration = as_calibration(calibration)
    adapter = get_adapter(model)
    all_layers = adapter.layers(model)
    n_teacher = len(all_layers)
    require(1 <= n_student <= n_teacher,
            f"The student needs between 1 and {n_teacher} layers (the teacher's depth), not {n_student}.")
    has_labels = all("labels" in b for b in calibration.batches)
    if criterion == "auto":
        criterion = "task-loss" if task_of(model) != "base" and has_labels else "representation"
    require(criterion in ("task-loss", "representation"),
            f"Unknown layer criterion {criterion!r}; choose task-loss or representation.")
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    reference: list[torch.Tensor] = []

    def evaluate(keep: list[int]) -> float:
        adapter.set_layers(model, nn.ModuleList([all_layers[i] for i in keep]))
        total, count = 0.0, 0
        for b, batch in enumerate(calibration.batches):
            n = int(batch["input_ids"].shape[0])
            if criterion == "task-loss":
                total += float(model(**model_inputs(batch, with_labels=True)).loss) * n
            else:
                pooled = _mean_pool(model, batch)
                if len(reference) <= b:
                    reference.append(pooled)
                total += float((1 - torch.cosine_similarity(pooled, reference[b], dim=-1)).sum())
            count += n
        return total / count

    keep = list(range(n_teacher))
    trace: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            full = evaluate(keep)
            while len(keep) > n_student:
                losses = [(evaluate([k for k in keep if k != drop]), drop) for drop in keep]
                loss, drop = min(losses)  # ties: the lower layer index goes first
                keep.remove(drop)
                trace.append({"removed": drop, "loss": round(loss, 6)})
    finally:
        adapter.set_layers(model, all_layers)
        model.train(was_training)
    return LayerSelection(layers=keep, criterion=criterion, full_loss=round(full, 6), trace=trace,
                          seconds=time.perf_counter() - start, calibration=dict(calibration.description))


def _mean_pool(model, batch) -> torch.Tensor:
    inputs = model_inputs(batch, with_labels=False)
    out = model(**inputs, output_hidden_states=True)
    last = out.hidden_states[-1]
    mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).unsqueeze(-1).to(last.dtype)
    return (last * mask).sum(1) / mask.sum(1).clamp(min=1)


def importance_layers(teacher, n_student: int, calibration, seed: int = 0, criterion: str = "auto") -> list[int]:
    """The 0-indexed teacher layers a ``n_student``-layer student should copy (ascending)."""
    del seed  # the calibration subset carries the seed; elimination itself is deterministic
    return layer_importance(teacher, n_student, calibration, criterion=criterion).layers

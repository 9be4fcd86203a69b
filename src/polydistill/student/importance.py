"""Selective weight copy: keep the teacher's *important* hidden dimensions, FFN units, heads and layers.

The paper's uniform width selection (Wibowo et al. 2024, §2.2) keeps evenly spaced elements and
collapses at half width; its authors name selective copy as future work (Wibowo et al. 2024, §4.1,
§7). Here every choice is measured on a small calibration set of the task (a few hundred labelled
examples).

The work is split by job; this module is the entry point (``polydistill student`` calls
:func:`choose_by_importance`) and re-exports the public names of:

- :mod:`~polydistill.student.calibration`: the calibration data (:class:`CalibrationSet`,
  :func:`load_calibration`, :func:`calibration_from_task_data`);
- :mod:`~polydistill.student.importance_scores`: the criteria, ``taylor`` and ``activation``
  (:func:`score_importance`, :class:`ImportanceScores`, :func:`top_k`);
- :mod:`~polydistill.student.importance_plan`: the width plan (:func:`importance_plan`,
  :func:`plan_from_scores`);
- :mod:`~polydistill.student.layer_importance`: the layer choice by greedy backward elimination
  (:func:`layer_importance`, :func:`importance_layers`, :class:`LayerSelection`).

Everything is deterministic: the calibration subset is drawn with ``seed``, the model runs in eval
mode (no dropout), and ties are broken by the lower index. Kept index lists are sorted ascending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polydistill.errors import PolydistillError
from polydistill.modeling import load_model, load_tokenizer
from polydistill.student.calibration import CalibrationSet, calibration_from_task_data, load_calibration
from polydistill.student.importance_plan import importance_plan, plan_from_scores
from polydistill.student.importance_scores import CRITERIA, ImportanceScores, score_importance, top_k
from polydistill.student.layer_importance import LayerSelection, importance_layers, layer_importance
from polydistill.student.layer_maps import resolve_layer_map
from polydistill.student.selection import WidthPlan, uniform_plan

__all__ = ["CRITERIA", "CalibrationSet", "ImportanceChoice", "ImportanceScores", "LayerSelection",
           "calibration_from_task_data", "choose_by_importance", "importance_layers", "importance_plan",
           "layer_importance", "load_calibration", "plan_from_scores", "score_importance", "top_k"]


@dataclass
class ImportanceChoice:
    """What ``polydistill student`` passes on to ``build_student`` (teacher already loaded)."""

    teacher: Any
    tokenizer: Any
    teacher_layers: list[int] | None
    width_plan: WidthPlan | None


def choose_by_importance(teacher, *, calibration_data: str | None, calibration_languages: str = "all",
                         calibration_size: int = 256, data_root: str | None = None, max_length: int = 128,
                         layers: int | None = None, layer_map: str = "alternate-last", hidden: int | None = None,
                         intermediate: int | None = None, heads: int | None = None,
                         width_select: str = "uniform", seed: int = 0) -> ImportanceChoice:
    """Load the teacher and calibration data once; choose layers (``layer_map='importance'``) and/or
    the width plan (``width_select='importance'``) by importance; anything else is left to
    ``build_student``'s own defaults (``None``)."""
    if calibration_data is None:
        raise PolydistillError(
            "Importance selection (--width-select importance or --layer-map importance) needs "
            "--calibration-data DATASET (a few hundred task examples, e.g. the teacher's training data).")
    model, tokenizer = teacher, None
    if isinstance(teacher, (str, bytes)) or hasattr(teacher, "__fspath__"):
        model, tokenizer = load_model(teacher), load_tokenizer(teacher)
    calibration = load_calibration(tokenizer, calibration_data, languages=calibration_languages,
                                   size=calibration_size, data_root=data_root, seed=seed, max_length=max_length)
    n_teacher = model.config.num_hidden_layers
    n_student = n_teacher if layers is None else int(layers)
    selection = None
    if str(layer_map).strip().lower() == "importance":
        selection = layer_importance(model, n_student, calibration)
        teacher_layers = selection.layers
    else:
        teacher_layers = resolve_layer_map(layer_map, n_teacher, n_student)
    if width_select == "importance":
        plan = importance_plan(model, hidden=hidden, intermediate=intermediate, heads=heads,
                               teacher_layers=teacher_layers, seed=seed, calibration=calibration)
    else:
        plan = uniform_plan(model.config, hidden, intermediate, heads, n_layers=len(teacher_layers))
    if selection is not None:
        plan.details["layer_selection"] = selection.to_dict()
    return ImportanceChoice(teacher=model, tokenizer=tokenizer, width_plan=plan,
                            teacher_layers=teacher_layers if selection is not None else None)

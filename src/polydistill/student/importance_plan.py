"""The importance width plan: keep the top-scoring hidden dimensions, FFN units, heads and head dimensions.

:func:`plan_from_scores` turns :class:`~polydistill.student.importance_scores.ImportanceScores` into
the :class:`~polydistill.student.selection.WidthPlan` that ``build_student(width_plan=...)`` copies
with: one hidden index set scored by the embeddings, the head and the copied teacher layers, per
copied layer its top FFN units and heads, and inside each kept head its own top head dimensions
(or one shared set). :func:`importance_plan` scores the teacher first when no scores are given.
The plan's ``details`` record the criterion in words, the calibration data and the scoring time.
"""

from __future__ import annotations

from collections.abc import Sequence

from polydistill.architectures import get_adapter
from polydistill.modeling import load_model
from polydistill.student.importance_scores import ImportanceScores, score_importance, top_k
from polydistill.student.selection import WidthPlan, target_sizes


def plan_from_scores(scores: ImportanceScores, config, teacher_layers: Sequence[int], hidden: int | None = None,
                     intermediate: int | None = None, heads: int | None = None,
                     per_head_dims: bool = True) -> WidthPlan:
    """The top-scoring elements of every dimension for a student copying ``teacher_layers``.

    ``per_head_dims``: every kept head keeps its own top head dimensions (``WidthPlan.head_dims``).
    Head dimensions are interchangeable across heads in a trained model (on the real e5 teacher the
    scores of a shared index summed over heads differ by only ±8 %), so one shared set is close to
    arbitrary; per head the scores are far more spread. False: one set shared by all heads.
    """
    hidden, intermediate, n_heads, head_size = target_sizes(config, hidden, intermediate, heads)
    teacher_layers = list(teacher_layers)
    t_heads = get_adapter(config).num_heads(config)
    head_sets = [top_k(scores.heads[k], n_heads) for k in teacher_layers]
    inner = sum(scores.inner[k][head_sets[i]].sum(0) for i, k in enumerate(teacher_layers))
    assert not isinstance(inner, int), "a student has at least one layer"  # sum() of no tensors is 0
    plan = WidthPlan(
        hidden=top_k(scores.hidden(teacher_layers), hidden),
        intermediate=[top_k(scores.intermediate[k], intermediate) for k in teacher_layers],
        heads=head_sets,
        head_dim=top_k(inner, head_size),
        method="importance",
    )
    if per_head_dims and head_size < scores.inner.shape[-1]:
        plan.head_dims = [[top_k(scores.inner[k][h], head_size) for h in head_sets[i]]
                          for i, k in enumerate(teacher_layers)]
    plan.details = {
        "criterion": _CRITERION_WORDS[scores.criterion],
        "calibration": scores.calibration,
        "calibration_examples": scores.num_examples,
        "scoring_seconds": round(scores.seconds, 2),
        "kept_heads_of": t_heads,
        "head_dims": "per head" if plan.head_dims is not None else "shared by all heads",
    }
    return plan


_CRITERION_WORDS = {
    "taylor": "taylor: first-order Taylor |w·dL/dw| of the teacher's task cross-entropy summed per hidden "
              "dimension and per head dimension of each head; Michel et al. (2019) gate gradient |dL/dgate| per FFN unit and "
              "head; absolute values per calibration batch",
    "activation": "activation: mean absolute activation per hidden dimension, FFN unit and head dimension, "
                  "mean context-vector norm per head (the teacher has no task head, so no task loss)",
}


def importance_plan(teacher, *, tokenizer=None, hidden: int | None = None, intermediate: int | None = None,
                    heads: int | None = None, teacher_layers: Sequence[int] | None = None, seed: int = 0,
                    calibration=None, scores: ImportanceScores | None = None,
                    criterion: str = "auto", per_head_dims: bool = True) -> WidthPlan:
    """Importance-based :class:`WidthPlan` for ``build_student(width_plan=...)``.

    ``calibration``: a :class:`~polydistill.student.calibration.CalibrationSet` (see
    :func:`~polydistill.student.calibration.load_calibration`) or a list of batches;
    ``scores`` may be given instead to reuse one scoring pass. ``seed`` is the seed the calibration
    subset was drawn with (recorded); the scoring itself has no randomness.
    """
    del tokenizer  # the calibration batches are already tokenised with the teacher's tokenizer
    model = teacher
    if isinstance(teacher, (str, bytes)) or hasattr(teacher, "__fspath__"):
        model = load_model(teacher)
    config = model.config
    if teacher_layers is None:
        teacher_layers = list(range(config.num_hidden_layers))
    if scores is None:
        scores = score_importance(model, calibration, criterion=criterion)
    plan = plan_from_scores(scores, config, teacher_layers, hidden, intermediate, heads, per_head_dims)
    plan.details["seed"] = seed
    return plan

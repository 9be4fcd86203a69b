"""Two-stage shrinking (Gurgurov et al. 2025; Minitron's prune-then-distil): distil a full-width,
shallower student first, then select the width by importance *on that student* (what it learned
decides which dimensions matter) and distil the narrow student again, from the original teacher.
The total step budget is split between the stages (``depth_share`` to the first).

Stage outputs: ``<out>.stages/depth/`` (the full-width student) and ``<out>`` (the final one); both
are ordinary runs of the training core, so a killed run resumes at its stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from polydistill.data.tokenize import fit_max_length
from polydistill.data.types import TaskData
from polydistill.distill.run import RunResult
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import require
from polydistill.modeling import load_config, load_tokenizer
from polydistill.student.build import build_student
from polydistill.student.provenance import read_provenance


def _split_budget(settings: TrainSettings, share: float) -> tuple[dict, dict]:
    if settings.max_steps:
        first = max(1, round(settings.max_steps * share))
        return {"max_steps": first}, {"max_steps": max(1, settings.max_steps - first)}
    return {"epochs": settings.epochs * share}, {"epochs": settings.epochs * (1 - share)}


def distill_in_stages(teacher: str | Path, data: TaskData, settings: TrainSettings, kd: KDSettings, *,
                      layers: int | None, hidden: int | None, intermediate: int | None = None,
                      heads: int | None = None, layer_map: str | Sequence[int] = "alternate-last", calibration_size: int = 256, depth_share: float = 0.5,
                      width_select: str = "importance", unlabelled=None, callbacks=()) -> RunResult:
    """depth (weight copy + KD at full width) → width (importance on the depth student, or ``uniform``) → KD.
    ``unlabelled`` (teacher-labelled augmentation, see data/unlabelled.py) joins both stages' KD."""
    from polydistill.distill.kd import distill
    from polydistill.student.calibration import calibration_from_task_data
    from polydistill.student.importance import importance_plan

    require(0 < depth_share < 1, f"The depth stage's share of the budget must be in (0, 1), not {depth_share}.")
    first, second = _split_budget(settings, depth_share)
    stage_dir = settings.output_dir.with_name(settings.output_dir.name + ".stages")
    depth_out = stage_dir / "depth"
    depth_settings = settings.model_copy(update={"output_dir": depth_out, **first})
    depth_student = build_student(str(teacher), layers=layers, layer_map=layer_map, seed=settings.seed)
    depth = distill(teacher, depth_student, data, depth_settings, kd, callbacks=callbacks, unlabelled=unlabelled)

    # width on the depth student: its importance scores (calibrated on the task's train inputs)
    tokenizer = load_tokenizer(depth.output_dir)
    if width_select == "importance":
        # the depth stage noted a cap at the models' positions already
        max_length = fit_max_length(settings.max_length, load_config(depth.output_dir), note=False)
        calibration = calibration_from_task_data(data, tokenizer, size=calibration_size, seed=settings.seed,
                                                 max_length=max_length)
        plan = importance_plan(str(depth.output_dir), hidden=hidden, intermediate=intermediate, heads=heads,
                               seed=settings.seed, calibration=calibration)
        narrow = build_student(str(depth.output_dir), width_plan=plan, width_select="importance",
                               seed=settings.seed, tokenizer=tokenizer)
        method = plan.method
    else:
        require(width_select == "uniform", f"Width selection must be importance or uniform, not {width_select!r}.")
        narrow = build_student(str(depth.output_dir), hidden=hidden, intermediate=intermediate, heads=heads,
                               seed=settings.seed, tokenizer=tokenizer)
        method = "uniform"
    # distil from the original teacher: student layer i ↔ the teacher layer the depth student copied
    provenance = read_provenance(depth.output_dir)
    assert provenance is not None, f"distill wrote no provenance into {depth.output_dir}"
    copied = provenance.teacher_layers
    width_kd = kd.model_copy(update={"layer_map": copied})
    result = distill(teacher, narrow, data, settings.model_copy(update=second), width_kd, callbacks=callbacks,
                     unlabelled=unlabelled)
    result.extra["stages"] = {"depth": {"output_dir": str(depth.output_dir), "best_dev_f1": depth.best_dev_f1,
                                        **first},
                              "width": {"plan": method, "hidden": hidden, **second}}
    return result

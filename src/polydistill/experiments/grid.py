"""Expand an :class:`ExperimentConfig` into typed run specs.

Each teacher is fine-tuned once per (model, dataset, train languages) and shared by every student
that needs it (students name it through ``teacher_run``). A run's id is a stable hash of its
resolved spec, so the same cell always maps to the same results file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from polydistill.distill.settings import KDSettings, Training
from polydistill.experiments.lang_grid import LMCell
from polydistill.experiments.schema import ExperimentConfig, Languages

Kind = Literal["teacher", "student", "copy"]


class RunSpec(BaseModel):
    """Everything that decides one run's numbers (and nothing else)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    teacher: str  # table label
    teacher_model: str
    base: str | None = None
    dataset: str
    data_root: str | None = None
    train_fraction: float | None = None  # dataset-level subset (CPU scale)
    max_eval_per_language: int | None = None
    max_dev_per_language: int | None = None
    train_languages: Languages = "all"
    teacher_train_languages: Languages = "all"
    eval_languages: list[tuple[str, Languages]] = [("all", "all")]  # (name, languages)
    init: str | None = None  # students and copies only
    kd: bool = False
    layers: int | None = None
    hidden: int | None = None
    layer_map: str | list[int] = "alternate-last"
    fraction: float = 1.0  # §5.2 student subset, relative to the train split
    seed: int = 0
    training: Training | None = None
    kd_settings: KDSettings | None = None
    teacher_run: str | None = None
    # later dimensions: left out of the run id at their default, so older grids keep their ids
    intermediate: int | None = None
    width_select: str = "uniform"
    objective: str | None = None  # name of the KD weight set (StudentGrid.objectives)
    unlabelled: str | None = None
    unlabelled_max: int | None = None
    stages: int = 1
    lm: LMCell | None = None  # a language-specific student's lm-distilled init (experiments/lang_grid.py)

    @property
    def run_id(self) -> str:
        data = self.model_dump(mode="json")
        for name, default in _LATER_DIMS.items():
            if data.get(name) == default:
                data.pop(name)
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return f"{self.kind}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"

    @property
    def label(self) -> str:
        # a language-student cell (experiments/lang_grid.py) trains and is scored on one language: named with it
        one = self.train_languages if isinstance(self.train_languages, list) and len(self.train_languages) == 1 \
            else None
        where = f"{self.teacher}/{self.dataset}" + (f"/{one[0]}" if one and self.eval_languages == [(one[0], one)]
                                                    else "")
        if self.kind == "teacher":
            return f"teacher {where} seed {self.seed}"
        parts = [self.init or "", "+KD" if self.kd else "", self.objective or "", f"L{self.layers}" if self.layers else "",
                 f"H{self.hidden}" if self.hidden else "", f"F{self.intermediate}" if self.intermediate else "",
                 "importance" if self.width_select != "uniform" else "", "+aug" if self.unlabelled else "",
                 "2-stage" if self.stages == 2 else "", f"{self.fraction:g}" if self.fraction < 1 else "",
                 self.lm.variant if self.lm else "",
                 "" if self.train_languages == self.teacher_train_languages
                 else f"on {','.join(self.train_languages) if isinstance(self.train_languages, list) else self.train_languages}"]
        head = "copy w/o fine-tuning" if self.kind == "copy" else " ".join(p for p in parts if p)
        return f"{head} {where} seed {self.seed}"


_LATER_DIMS = {"intermediate": None, "width_select": "uniform", "objective": None, "unlabelled": None,
               "unlabelled_max": None, "stages": 1, "lm": None}


def _lang_key(value: Languages) -> Languages:
    return list(value) if isinstance(value, list) else value


def eval_groups(groups) -> list[tuple[str, Languages]]:
    """Named eval groups: a list entry is named by itself (codes joined by commas)."""
    if isinstance(groups, dict):
        return [(name, _lang_key(langs)) for name, langs in groups.items()]
    return [(",".join(v) if isinstance(v, list) else v, _lang_key(v)) for v in groups]


def product(sizes, variants):
    """(layers, hidden, variant) for every size and variant."""
    return [(layers, hidden, variant) for layers, hidden in sizes for variant in variants]


def _variants(grid, kd: bool) -> list[tuple]:
    """(objective name, KD weights, width selection, unlabelled source, stages, FFN) of each student cell;
    the KD-only dimensions (objectives, augmentation, stages) apply to KD cells only."""
    objectives = list((grid.objectives or {None: {}}).items()) if kd else [(None, {})]
    unlabelled = grid.unlabelled if kd else [None]
    stages = grid.stages if kd else [1]
    return [(name, weights, width, source, stage, ffn)
            for name, weights in objectives for width in grid.width_select for source in unlabelled
            for stage in stages for ffn in grid.intermediate]


def _kd_for(base: KDSettings, weights: dict[str, float]) -> KDSettings:
    """The grid's KD settings with an objective's weights on top (validated like any KDSettings)."""
    if not weights:
        return base
    return KDSettings(**{**base.model_dump(exclude={"weights"}), "weights": {**base.weights, **weights}})


def expand(config: ExperimentConfig) -> list[RunSpec]:
    """All runs of the grid, teachers first (students depend on them), in a stable order."""
    runs: list[RunSpec] = []
    if config.language_students is not None:  # one block of cells per language (experiments/lang_grid.py)
        from polydistill.experiments.lang_grid import language_cells

        for teacher_fields, student_fields in language_cells(config):
            teacher_spec = RunSpec(kind="teacher", **teacher_fields)
            runs += [teacher_spec, *(RunSpec(teacher_run=teacher_spec.run_id, **s) for s in student_fields)]
    teacher_seed = config.teacher_seed if config.teacher_seed is not None else config.seeds[0]
    for teacher in config.teachers if config.language_students is None else []:
        for dataset in config.datasets:
            teacher_langs = _lang_key(dataset.train_languages or teacher.train_languages)
            common = dict(
                teacher=teacher.name,
                teacher_model=teacher.model,
                dataset=dataset.name,
                data_root=config.data_root,
                train_fraction=dataset.train_fraction,
                max_eval_per_language=dataset.max_eval_per_language,
                max_dev_per_language=dataset.max_dev_per_language or dataset.max_eval_per_language,
                teacher_train_languages=teacher_langs,
                eval_languages=eval_groups(dataset.eval_languages or config.eval_languages),
            )
            t_train = config.teacher_training
            if dataset.eval_steps:
                t_train = t_train.model_copy(update={"eval_steps": dataset.eval_steps})
            if dataset.teacher_max_steps:
                t_train = t_train.model_copy(update={"max_steps": dataset.teacher_max_steps})
            teacher_spec = RunSpec(
                kind="teacher", train_languages=teacher_langs, seed=teacher_seed,
                training=t_train, **common,
            )
            runs.append(teacher_spec)
            grid = config.students
            if grid is None:
                continue
            s_train = config.student_training
            if dataset.eval_steps:
                s_train = s_train.model_copy(update={"eval_steps": dataset.eval_steps})
            sizes = [(layers, hidden) for layers in grid.layers for hidden in grid.hidden]
            if config.copy_without_finetune:
                for layers, hidden in sizes:
                    runs.append(RunSpec(
                        kind="copy", init="from-teacher", layers=layers, hidden=hidden, layer_map=grid.layer_map,
                        train_languages=teacher_langs, seed=teacher_seed,
                        teacher_run=teacher_spec.run_id, **common,
                    ))
            for train_langs in dataset.student_train_languages or grid.train_languages:
                langs = teacher_langs if train_langs == "teacher" else _lang_key(train_langs)
                for fraction in grid.fractions:
                    for init in grid.inits:
                        for kd in grid.kd:
                            for layers, hidden, variant in product(sizes, _variants(grid, kd)):
                                for seed in config.seeds:
                                    objective, weights, width_select, unlabelled, stages, intermediate = variant
                                    runs.append(RunSpec(
                                        kind="student", base=(teacher.base or teacher.model)
                                        if init == "from-base" else None,
                                        init=init, kd=kd, layers=layers, hidden=hidden, layer_map=grid.layer_map,
                                        fraction=fraction, train_languages=langs, seed=seed, training=s_train,
                                        kd_settings=_kd_for(config.kd, weights) if kd else None,
                                        teacher_run=teacher_spec.run_id, intermediate=intermediate,
                                        width_select=width_select, objective=objective, unlabelled=unlabelled,
                                        unlabelled_max=grid.unlabelled_max if unlabelled else None,
                                        stages=stages, **common,
                                    ))
    # de-duplicate while keeping order (e.g. repeated list entries)
    seen: set[str] = set()
    unique = []
    for run in runs:
        if run.run_id not in seen:
            seen.add(run.run_id)
            unique.append(run)
    return unique

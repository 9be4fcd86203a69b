"""Resumable execution of a grid.

Every run is: load data → (teacher: fine-tune | student: build by weight copy, then KD or plain
fine-tuning | copy: build only) → evaluate on the test split per language group → one JSON in the
store. Safe to kill at any moment:

- a finished run has its result file and is never redone (a cell is a :class:`polydistill.steps.Step` whose
  marker is that file: :meth:`polydistill.experiments.store.ResultStore.cell_step`);
- a run killed while training resumes from its last Trainer checkpoint (``TrainSettings.resume``);
- a run killed after training but before its result was written re-evaluates the saved best model
  (the training is a step too, :func:`train_step`: ``train_result.json`` is written atomically right after
  training; a run killed between the hand-over and that record rebuilds it from the model's ``run.json``);
- a built student directory is written atomically, so it is either complete or absent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from polydistill.data import load_capped_task_data
from polydistill.data.unlabelled import load_unlabelled
from polydistill.distill.run import RunRecord, step_report_callback
from polydistill.distill.settings import Training, TrainSettings
from polydistill.distill.stages import distill_in_stages
from polydistill.errors import PolydistillError
from polydistill.evaluate import evaluate_model
from polydistill.evaluate.gate import weak_teacher_reason
from polydistill.experiments.grid import RunSpec, expand
from polydistill.experiments.schema import ExperimentConfig
from polydistill.experiments.store import ResultStore, encode_language, encode_predictions, open_store
from polydistill.io import (
    PROVENANCE_FILE,
    RUN_FILE,
    atomic_write_json,
    package_versions,
    read_record,
    try_lock,
)
from polydistill.modeling import load_model, load_tokenizer
from polydistill.ranks import barrier, is_main_process, world_size
from polydistill.steps import Step, StepOutputGone, named_by_path
from polydistill.student.build import build_student
from polydistill.student.provenance import read_provenance

EVAL_SEED = 0  # eval caps and dataset subsets are fixed across seeds: seeds vary training only


@dataclass
class GridSummary:
    work_dir: Path
    total: int
    skipped: int = 0
    finished: list[str] = field(default_factory=list)
    seconds: float = 0.0


def default_work_dir(config: ExperimentConfig) -> Path:
    return Path(config.work_dir) if config.work_dir else Path("polydistill-runs") / config.name


# ---------------------------------------------------------------- data


def _load(spec: RunSpec, languages, fraction: float | None, purpose: str = "train"):
    return load_capped_task_data(spec.dataset, languages=languages, data_root=spec.data_root, fraction=fraction,
                                 seed=EVAL_SEED, purpose=purpose, max_dev_per_language=spec.max_dev_per_language,
                                 max_test_per_language=spec.max_eval_per_language, cap_seed=EVAL_SEED)


def train_data(spec: RunSpec):
    fraction = (spec.train_fraction or 1.0) * spec.fraction
    return _load(spec, spec.train_languages, fraction if fraction < 1.0 else None)


# ---------------------------------------------------------------- training


def _training(spec: RunSpec) -> Training:
    """The training settings of a run that trains (teachers and students; only copies have none)."""
    assert spec.training is not None, f"{spec.label} has no training settings"
    return spec.training


def _settings(spec: RunSpec, output_dir: Path, freeze: bool):
    return TrainSettings(
        **_training(spec).model_dump(exclude={"freeze_word_embeddings"}), freeze_word_embeddings=freeze,
        output_dir=output_dir, seed=spec.seed, resume=True, overwrite=False,
        progress=False,  # the grid shows one rich progress bar over its runs
    )


def loss_curve(log_history: list[dict[str, Any]]) -> list[list[float]]:
    """(step, training loss) pairs from a Trainer log history (eval and summary entries skipped);
    a step logged twice (a resumed run re-logs the steps after its checkpoint) keeps its last value."""
    by_step = {float(e["step"]): float(e["loss"]) for e in log_history if "loss" in e and "step" in e}
    return [[step, by_step[step]] for step in sorted(by_step)]


def dev_curve(log_history: list[dict[str, Any]]) -> list[list[float]]:
    """(step, dev F1) of every evaluation during training (the final re-evaluation of the best checkpoint,
    logged at the last step again, is kept once): whether a teacher had stopped improving."""
    by_step: dict[float, float] = {}
    for e in log_history:
        if "eval_f1" in e and "step" in e:
            by_step.setdefault(float(e["step"]), float(e["eval_f1"]))
    return [[step, by_step[step]] for step in sorted(by_step)]


def _run_result_dict(result) -> dict[str, Any]:
    return {
        "best_dev_f1": result.best_dev_f1,
        "dev_metrics": result.dev_metrics,
        "dev_curve": dev_curve(result.log_history),
        "loss_curve": loss_curve(result.log_history),
        "log_history": [e for e in result.log_history if any(k.startswith("loss") for k in e)],
        "train_seconds": result.train_seconds,
    }


def _record_from_model_dir(model_dir: Path) -> dict[str, Any]:
    saved = read_record(model_dir / "run.json", RunRecord).result
    log = model_dir / "log.jsonl"
    history = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if log.is_file() else []
    return {
        "best_dev_f1": saved.get("best_dev_f1"),
        "dev_metrics": saved.get("dev_metrics", {}),
        "dev_curve": dev_curve(history),
        "loss_curve": loss_curve(history),
        "log_history": [e for e in history if any(k.startswith("loss") for k in e)],
        "train_seconds": saved.get("train_seconds"),
    }


def _teacher_dir(store: ResultStore, spec: RunSpec) -> Path:
    assert spec.teacher_run is not None, f"{spec.label} has no teacher run"
    path = store.run_dir(spec.teacher_run) / "model"
    if not (path / "config.json").is_file():
        raise PolydistillError(
            f"The fine-tuned teacher of {spec.label} is missing at {path}; delete "
            f"{store.result_path(spec.teacher_run)} and re-run so the teacher is trained again."
        )
    return path


def _build(spec: RunSpec, teacher_dir: Path, out: Path | None):
    """The student of a cell: in memory (``out`` None), or written once to ``out`` (by the main process
    under torchrun; the others wait for it). Importance selection is calibrated on the train split."""
    if out is not None and build_step(out).done() is not None:
        return None  # built by an earlier attempt (atomic, so complete)
    built = None
    assert spec.init is not None, f"{spec.label} has no student init"
    if out is None or is_main_process():
        calibration = None
        if spec.width_select == "importance":
            from polydistill.student.calibration import calibration_from_task_data

            max_length = spec.training.max_length if spec.training else 128
            calibration = calibration_from_task_data(train_data(spec), load_tokenizer(teacher_dir), seed=spec.seed,
                                                     max_length=max_length)
        built = build_student(
            str(teacher_dir), out=out, layers=spec.layers, layer_map=spec.layer_map, hidden=spec.hidden,
            intermediate=spec.intermediate, init=spec.init, base=spec.base, seed=spec.seed, overwrite=False,
            width_select=spec.width_select, calibration=calibration,
        )
    if out is not None:
        barrier()
    return built


def build_step(out: Path) -> Step:
    """The weight-copied student of a cell as a step: done when its model directory (written atomically) holds its
    provenance (the marker, ``polydistill.json``), config and weights. Its identity is the cell's."""
    return Step(name="student build", folder=out.parent, settings={}, outputs=(out,), marker_file=out / PROVENANCE_FILE,
                schema=dict[str, Any], recorded=named_by_path, remedy="delete it to build the student again")


def train_step(run_dir: Path) -> Step:
    """The training inside a cell as a step: its marker ``train_result.json`` (the training record, written
    atomically right after training; its format is the record's, spread into the cell's result), done while
    the trained model beside it is there. Its identity is the cell's (the run id names the folder)."""
    return Step(name="training", folder=run_dir, settings={}, marker_file=run_dir / "train_result.json",
                schema=dict[str, Any], recorded=named_by_path, records=((run_dir / "model" / "config.json", None),))


def _train(spec: RunSpec, store: ResultStore, run_dir: Path,
           on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train the run's model into ``run_dir/model``; idempotent across kills."""
    step = train_step(run_dir)
    model_dir = run_dir / "model"
    with contextlib.suppress(StepOutputGone):  # a record without its model: trained again
        if (finished := step.done()) is not None:
            return finished
    if (model_dir / RUN_FILE).is_file():
        # killed after the best model was saved but before train_result.json: rebuild the record
        # from what the training run wrote next to the model
        record = _record_from_model_dir(model_dir)
        if spec.lm is not None:  # its lm-distilled init is finished: this reads its record back
            from polydistill.experiments.lang_cells import build_lm_student

            record["lm_student"] = build_lm_student(spec, store)[1]
        return step.write(record)
    data = train_data(spec)
    if spec.kind == "teacher":
        from polydistill.distill.finetune import finetune

        settings = _settings(spec, model_dir, _training(spec).freeze_word_embeddings)
        result = finetune(spec.teacher_model, data, settings, callbacks=step_report_callback(on_step))
    else:
        teacher_dir = _teacher_dir(store, spec)
        init_dir = run_dir / "init"
        # frozen *random* embeddings cannot learn (SPEC lessons): never freeze for from-scratch
        freeze = _training(spec).freeze_word_embeddings and spec.init != "from-scratch"
        settings = _settings(spec, model_dir, freeze)
        # the grid's own gate (teacher_gate_margin) judged this teacher once, when it was trained
        kd = None
        if spec.kd:
            assert spec.kd_settings is not None, f"{spec.label} has no KD settings"
            kd = spec.kd_settings.model_copy(update={"allow_weak_teacher": True})
        unlabelled = None
        if spec.kd and spec.unlabelled:
            unlabelled = load_unlabelled(spec.unlabelled, data.task, spec.data_root, spec.unlabelled_max, spec.seed)
        if kd is not None and spec.stages == 2:
            result = distill_in_stages(str(teacher_dir), data, settings, kd, layers=spec.layers, hidden=spec.hidden,
                                       intermediate=spec.intermediate, layer_map=spec.layer_map,
                                       width_select=spec.width_select, unlabelled=unlabelled,
                                       callbacks=step_report_callback(on_step))
        elif kd is not None:
            from polydistill.distill.kd import distill

            _build(spec, teacher_dir, init_dir)
            result = distill(str(teacher_dir), str(init_dir), data, settings, kd,
                             callbacks=step_report_callback(on_step), unlabelled=unlabelled)
        else:
            from polydistill.distill.finetune import finetune

            if spec.lm is not None:  # a language-specific student: its init is lm-distilled, not weight-copied
                from polydistill.experiments.lang_cells import build_lm_student

                init_dir, lm_record = build_lm_student(spec, store, on_step)
            else:
                _build(spec, teacher_dir, init_dir)
            result = finetune(str(init_dir), data, settings, callbacks=step_report_callback(on_step))
        model_dir = Path(result.output_dir)
    record = _run_result_dict(result)
    if spec.lm is not None:
        record["lm_student"] = lm_record
    if is_main_process():
        step.write(record)
    return record


# ---------------------------------------------------------------- evaluation


def evaluate_groups(spec: RunSpec, model, tokenizer) -> dict[str, Any]:
    """Test-split scores for every eval group, plus per-language scores over their union, and the
    gold and predicted label of every test example per group and language (``predictions``, packed
    by :func:`polydistill.experiments.store.encode_predictions`) for paired statistics."""
    groups: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    per_language: dict[str, Any] = {}
    examples: dict[str, dict[str, Any]] = {}
    task, label_names = None, []
    # eval_batch_size None means "as --batch-size" (Training's own default), not unbatched
    batch = (spec.training.eval_batch_size or spec.training.batch_size) if spec.training else 64
    max_length = spec.training.max_length if spec.training else 128
    for name, group in spec.eval_languages:
        data = _load(spec, group, None, purpose="evaluate")
        report = evaluate_model(model, tokenizer, data, split="test", batch_size=batch, max_length=max_length)
        groups[name] = report.overall
        baselines[name] = report.baselines
        per_language.update(report.per_language)
        task, label_names = report.task, report.label_names
        ex = report.examples
        assert ex is not None  # evaluate_model keeps every example's prediction
        rows: dict[str, list[int]] = {}
        for i, lang in enumerate(ex.languages):
            rows.setdefault(lang, []).append(i)
        # a language's capped examples depend on the group it was loaded with: stored per group
        examples[name] = {lang: encode_language(report.task, [ex.true[i] for i in idx], [ex.pred[i] for i in idx],
                                                [ex.texts[i] for i in idx])
                          for lang in report.languages if (idx := rows.get(lang))}
    return {"groups": groups, "per_language": per_language, "baselines": baselines,
            "predictions": encode_predictions(task, label_names, examples)}


def _load_trained(path: Path):
    return load_model(str(path)), load_tokenizer(str(path))


class TeacherGateError(PolydistillError):
    """A grid's teacher did not learn: the grid stops before any student is built."""


def _gate(spec: RunSpec, train: dict[str, Any], margin: float | None) -> None:
    if margin is None:
        return
    reason = weak_teacher_reason(train.get("best_dev_f1"), train_data(spec), margin)
    if reason:
        raise TeacherGateError(f"The grid stopped: the teacher {spec.label} is too weak to distil from: {reason} "
                               "(or set teacher_gate_margin: null in the grid config).")


def execute(spec: RunSpec, store: ResultStore, teacher_spec: RunSpec | None = None,
            gate_margin: float | None = None, on_step: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run one cell and return its record (not yet saved); a weak teacher raises TeacherGateError."""
    from transformers import set_seed

    start = time.time()
    # new heads are initialised before the Trainer seeds anything: seed here so a run gives the same
    # numbers whether it runs first in a fresh process, after other runs, or after a restart
    set_seed(spec.seed)
    run_dir = store.run_dir(spec.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    resumed = any(run_dir.iterdir())
    if spec.kind == "copy":
        # §5.1: evaluate the weight-copied student as is; eval settings follow the teacher's
        built = _build(spec, _teacher_dir(store, spec), None)
        eval_spec = spec.model_copy(update={"training": teacher_spec.training if teacher_spec else None})
        metrics = evaluate_groups(eval_spec, built.model, built.tokenizer)
        train: dict[str, Any] = {"loss_curve": [], "train_seconds": 0.0, "best_dev_f1": None}
        provenance = built.provenance
    else:
        train = _train(spec, store, run_dir, on_step)
        if spec.kind == "teacher":
            _gate(spec, train, gate_margin)
        model, tokenizer = _load_trained(run_dir / "model")
        metrics = evaluate_groups(spec, model, tokenizer)
        provenance = None
        if spec.kind == "student":
            lm_init = (train.get("lm_student") or {}).get("init_dir")
            provenance = read_provenance(lm_init if spec.lm is not None else run_dir / "init")
    return {
        "spec": spec.model_dump(mode="json"),
        "label": spec.label,
        "metrics": metrics,
        **train,
        "student_provenance": provenance,
        "model_dir": str(run_dir / "model") if spec.kind == "teacher" else None,
        "wall_seconds": time.time() - start,
        "resumed": resumed,
        "versions": package_versions(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _cleanup(spec: RunSpec, store: ResultStore, keep_students: bool) -> None:
    run_dir = store.run_dir(spec.run_id)
    if spec.kind == "teacher":
        # the teacher model is shared by its students; its checkpoints are not needed any more
        shutil.rmtree(run_dir / "model.work", ignore_errors=True)
    elif not keep_students:
        shutil.rmtree(run_dir, ignore_errors=True)


def quiet_libraries() -> None:
    """One progress display over the runs; per-step library bars would bury it."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()


def prepare_grid(config: ExperimentConfig, work_dir: str | os.PathLike | None, only: list[str] | None = None
                 ) -> tuple[Path, ResultStore, list[RunSpec]]:
    """(work dir, store, the cells to run) of a grid, its ``grids/<name>.json`` written: what every backend
    (this sequential runner, :mod:`polydistill.experiments.ray_backend`) does first. ``only`` as in run_grid."""
    quiet_libraries()
    work_dir = Path(work_dir) if work_dir else default_work_dir(config)
    store = open_store(work_dir)
    all_specs = expand(config)
    specs = all_specs
    if only:
        chosen = {s.run_id for s in all_specs if any(p in s.run_id or p in s.label for p in only)}
        chosen |= {s.teacher_run for s in all_specs if s.run_id in chosen and s.teacher_run}
        specs = [s for s in all_specs if s.run_id in chosen]
        if not specs:
            raise PolydistillError(f"--only {' '.join(only)} matches no run of grid {config.name}; see --dry-run.")
    atomic_write_json(work_dir / "grids" / f"{config.name}.json", {
        "schema_version": config.schema_version,
        "config": config.model_dump(mode="json"),
        "runs": [{"run_id": s.run_id, "label": s.label} for s in all_specs],
    })
    return work_dir, store, specs


def run_grid(
    config: ExperimentConfig,
    work_dir: str | os.PathLike | None = None,
    on_event: Callable[[str, RunSpec, int, int], None] | None = None,
    only: list[str] | None = None,
) -> GridSummary:
    """Run every unfinished cell of ``config``; ``on_event(kind, spec, index, total)`` reports progress
    with kind in start / skip / done / fail, and ``("step", spec, step, max_steps)`` during training. ``only``: run just the cells whose id or label contains one of
    these strings (plus the teachers they need)."""
    work_dir, store, specs = prepare_grid(config, work_dir, only)
    if config.torch_threads:
        import torch

        torch.set_num_threads(config.torch_threads)

    # Under torchrun every process runs the same cells in the same order (each training is one DDP
    # job); the main process alone locks, writes results and cleans up. Such a grid owns its work dir.
    distributed, main = world_size() > 1, is_main_process()
    by_id = {s.run_id: s for s in specs}
    failed: dict[str, str] = {}
    summary = GridSummary(work_dir=work_dir, total=len(specs))
    start = time.time()
    pending = list(enumerate(specs))
    while pending:
        progressed, waiting = False, []
        for index, spec in pending:
            if store.has(spec.run_id):
                summary.skipped += 1
                progressed = True
                if on_event:
                    on_event("skip", spec, index, len(specs))
                continue
            if spec.teacher_run in failed:  # its teacher failed: nothing to distil from
                failed[spec.run_id] = f"its teacher failed ({failed[spec.teacher_run]})"
                progressed = True
                continue
            if spec.teacher_run and not store.has(spec.teacher_run):
                waiting.append((index, spec))  # its teacher is being trained by another process
                continue
            lock = try_lock(store.run_dir(spec.run_id)) if not distributed else contextlib.nullcontext(True)
            with lock as locked:
                if not locked:  # another `grid run` sharing this work dir is on it
                    waiting.append((index, spec))
                    continue
                if store.has(spec.run_id):
                    waiting.append((index, spec))  # finished meanwhile: counted as skipped next pass
                    continue
                if on_event:
                    on_event("start", spec, index, len(specs))
                try:
                    step_report = (lambda step, total, s=spec, i=index: on_event("step", s, step, total)) \
                        if on_event else None
                    record = execute(spec, store, by_id.get(spec.teacher_run or ""), config.teacher_gate_margin,
                                     step_report)
                except TeacherGateError:
                    raise
                except PolydistillError as err:  # a NaN, a refused input: this cell has no result
                    failed[spec.run_id] = str(err)
                    if main:
                        store.fail(spec.run_id, spec.label, str(err))
                    progressed = True
                    if on_event:
                        on_event("fail", spec, index, len(specs))
                    continue
                if main:
                    store.save(spec.run_id, record)
                    _cleanup(spec, store, config.keep_student_models)
                barrier()
            summary.finished.append(spec.run_id)
            progressed = True
            if on_event:
                on_event("done", spec, index, len(specs))
        pending = waiting
        if pending and not progressed:
            time.sleep(5)
    summary.seconds = time.time() - start
    raise_if_failed(failed, summary, by_id, config.name, work_dir)
    return summary


def raise_if_failed(failed: dict, summary, by_id: dict, grid: str, work_dir: Path) -> None:
    """One sentence for the runs of a grid that failed (their results kept), after both backends' loops."""
    if failed:
        first = next(iter(failed.items()))
        raise PolydistillError(
            f"{len(failed)} run(s) of grid {grid} failed ({len(summary.finished)} finished, results kept); "
            f"the first, {by_id[first[0]].label}: {first[1]} Details in {work_dir / 'failed'}; fix and re-run."
        )

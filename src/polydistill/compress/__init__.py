"""``polydistill compress``: one command from a fine-tuned teacher to a deployable student for the
languages you name, with a report card.

:func:`compress` composes the existing stages (see :mod:`polydistill.compress.stages`): plan the student
(a ``--size`` preset, explicit sizes, or the largest candidate whose *measured* speed-up reaches
``--target-speedup``; the KD schedule that fits ``--budget-minutes``), reduce the vocabulary to the
languages, copy depth, select width by importance, distil (TinyBERT terms, ``rel`` when the width changes),
export int8, evaluate the teacher and every intermediate student on one test split, bench them side by
side, and write ``report.md`` / ``report.json`` / plots (:mod:`polydistill.compress.report`).

Layout of ``DIR``::

    compress.json              the command's fingerprint (a different command is refused, naming what differs)
    stages/<n>-<name>/         each stage's output, written atomically, and its done.json marker
                               (--prune-rounds N: rounds 1 … N−1 of depth, width, KD in <n>-<name>-round-<r>/)
    model/  model-int8/        the final student (PyTorch) and its int8 ONNX export
    report.md  report.json  plots/

Re-running the same command resumes at the first unfinished stage (KD from its checkpoints).

This module runs the stages; the jobs around them have their own modules: :mod:`.checks` (the refusals
made up front), :mod:`.data` (the KD and evaluation data, the unlabelled KD inputs), :mod:`.output`
(``DIR`` made this command's, an earlier run that ``--overwrite`` replaces kept until the new one has
finished, the final models), :mod:`.report` (the report card and the final models' cards).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydistill.compress import stages as stage_functions
from polydistill.compress.checks import check_upfront
from polydistill.compress.data import load_augmentation, load_data
from polydistill.compress.output import claimed, final_outputs, record_command
from polydistill.compress.plan import CompressSettings, fingerprint, teacher_identity
from polydistill.compress.stages import STAGES, Context
from polydistill.data.load import content_fingerprint
from polydistill.distill.settings import KDSettings
from polydistill.errors import PolydistillError
from polydistill.io import check_output_path, output_lock
from polydistill.steps import StepOutputGone

__all__ = ["CompressResult", "CompressSettings", "compress", "load_data", "load_augmentation"]


@dataclass
class CompressResult:
    out: Path
    model_dir: Path  # the final student (PyTorch, HF directory)
    int8_dir: Path  # its int8 ONNX export
    report: dict[str, Any]
    files: dict[str, Path]
    stages: dict[str, dict[str, Any]]  # done markers by stage
    resumed: list[str]  # stages found done (not redone) by this call
    seconds: float
    test_data: Any = field(default=None, repr=False)  # the TaskData every model was evaluated on


def settings_of(values: dict[str, Any] | CompressSettings) -> CompressSettings:
    """Validated settings; a bad value is one sentence."""
    from pydantic import ValidationError

    if isinstance(values, CompressSettings):
        return values
    try:
        return CompressSettings(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise PolydistillError(f"Invalid compress settings: {first['msg'].removeprefix('Value error, ')} "
                               f"({where}).") from None


# ---------------------------------------------------------------------------------------------- run
def compress(settings: CompressSettings | dict[str, Any] | None = None, *,
             on_event: Callable[[dict[str, Any]], None] | None = None,
             say: Callable[[str], None] | None = None, **fields: Any) -> CompressResult:
    """Run (or resume) ``polydistill compress``; see the module docstring. ``settings`` or keyword fields of
    :class:`CompressSettings`. ``on_event`` receives ``{"kind": "start" | "done" | "skip" | "note", "stage",
    "index", "total", "eta_s", "message"}`` and ``{"kind": "step", "stage": "kd", "step", "steps"}`` for each KD
    optimiser step; ``say`` gets one-line notes."""
    from polydistill.modeling import load_config

    s = settings_of(settings if settings is not None else fields)
    started = time.perf_counter()
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    total = [len(STAGES)]  # grows by the depth, width and KD stages of each further prune-and-distil round

    def emit(kind: str, stage: str | None = None, key: str | None = None, **extra: Any) -> None:
        if on_event is not None:
            on_event({"kind": kind, "stage": key or stage, "index": STAGES.index(stage) if stage else None,
                      "total": total[0], **extra})

    def note(message: str) -> None:
        emit("note", message=message)
        if say is not None:
            say(message)

    config = load_config(s.teacher)
    check_upfront(s, config)
    from polydistill.distill.checks import check_labels

    train, evaluation, kd, unseen, seen, notes = load_data(s)
    check_labels(config, train.label_names, "teacher")
    unlabelled = load_augmentation(s, train.task)  # read up front: its errors come before any stage
    from polydistill.distill.kd import check_teacher_learned

    check_teacher_learned(s.teacher, train, KDSettings(allow_weak_teacher=s.allow_weak_teacher))  # dir or hub id
    root = Path(s.out).expanduser()
    data = {"train": train.fingerprint, "evaluation": evaluation.fingerprint, "kd": kd, "unseen": unseen}
    if unlabelled is not None and s.unlabelled_data:  # its content too (a file edited since is another command)
        data["unlabelled"] = content_fingerprint({"train": unlabelled}, s.unlabelled_data)
    fp = fingerprint(s, teacher_identity(s.teacher), data)
    inputs = (s.teacher, s.data_root, s.dataset, train.source, s.unlabelled_data)
    check_output_path(root, inputs=inputs)  # before the lock file is made beside it
    with output_lock(root), claimed(root, fp, s.overwrite) as resumed_run:
        ctx = Context(settings=s, root=root, teacher_config=config, train=train, evaluation=evaluation,
                      kd_languages=kd, unseen=unseen, seen=seen, notes=notes, say=note, unlabelled=unlabelled,
                      on_step=lambda step, steps: emit("step", "kd", step=step, steps=steps))
        resumed = _run_stages(ctx, fp, resumed_run, emit, note, total)
        for record in ctx.records.values():
            ctx.notes.extend(record["summary"].get("notes") or [])
        outputs = final_outputs(ctx)
        from polydistill.compress.report import write_model_cards, write_report

        report, files = write_report(ctx, {k: str(v) for k, v in outputs.items()})
        write_model_cards(outputs, report)
    if s.push_to_hub:
        from polydistill.hub import push_model_dir

        note(f"pushing {outputs['model']} to {s.push_to_hub} and {outputs['int8']} to {s.push_to_hub}-int8")
        push_model_dir(outputs["model"], s.push_to_hub)
        push_model_dir(outputs["int8"], f"{s.push_to_hub}-int8")
    return CompressResult(out=root, model_dir=outputs["model"], int8_dir=outputs["int8"], report=report, files=files,
                          stages=dict(ctx.records), resumed=resumed, seconds=time.perf_counter() - started,
                          test_data=evaluation)


def _run_stages(ctx: Context, fp: dict[str, Any], resumed_run: bool, emit: Callable[..., None],
                note: Callable[[str], None], total: list[int]) -> list[str]:
    """Each stage in turn as a step: skipped when done (``resumed_run``: ``DIR`` already holds this command's
    run), else run and its marker written; after the plan, ``DIR/compress.json``; the depth, width and KD stages
    once per prune-and-distil round (``total[0]``, the count of steps, grows by the further rounds). Returns the
    stages skipped (their record keys)."""
    resumed: list[str] = []
    for name in STAGES:
        if name in stage_functions.ROUND_STAGES[1:]:
            continue  # run with the depth stage, round by round
        if name == stage_functions.ROUND_STAGES[0]:
            total[0] += len(stage_functions.ROUND_STAGES) * (ctx.round_count - 1)
            runs = [(ctx.at_round(r), stage) for r in range(1, ctx.round_count + 1)
                    for stage in stage_functions.ROUND_STAGES]
        else:
            runs = [(ctx, name)]
        for here, stage in runs:
            resumed_run = _run_stage(here, stage, fp, resumed_run, resumed, emit, note)
    return resumed


def _run_stage(ctx: Context, name: str, fp: dict[str, Any], resumed_run: bool, resumed: list[str],
               emit: Callable[..., None], note: Callable[[str], None]) -> bool:
    """One stage as a step (see :func:`_run_stages`); returns whether ``DIR`` now holds this command's run."""
    step = stage_functions.stage_step(ctx, name)
    key = ctx.key(name)
    try:
        marker = step.done() if resumed_run else None
    except StepOutputGone as gone:
        if name not in ("evaluate", "bench"):  # later stages were built from it
            raise PolydistillError(
                f"{ctx.root} is a finished compress run up to its {key} stage, but that stage's output "
                f"{gone.path} was {gone.how} since; pass --overwrite to run compress afresh (the earlier "
                "result is kept until the new one is done), or use another --out.") from None
        # nothing is built from these: the stage re-makes what is missing
        note(f"the {name} stage's output {gone.path} was {gone.how} since it finished; re-running that stage")
        marker = None
    if marker is not None:
        ctx.records[key] = marker
        resumed.append(key)
        emit("skip", name, key, seconds=marker["seconds"])
        return resumed_run
    eta = None
    if name == "kd":
        eta = ctx.schedule.estimated_seconds
    emit("start", name, key, eta_s=eta)
    start = time.perf_counter()
    summary = getattr(stage_functions, f"run_{name}")(ctx)
    if name == "plan":  # the plan passed every refusal: from here on DIR belongs to this command
        record_command(ctx.root, fp)
        resumed_run = True
    ctx.records[key] = step.finish(summary, time.perf_counter() - start)
    emit("done", name, key, seconds=ctx.records[key]["seconds"])
    return resumed_run

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
    model/  model-int8/        the final student (PyTorch) and its int8 ONNX export
    report.md  report.json  plots/

Re-running the same command resumes at the first unfinished stage (KD from its checkpoints).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from polydistill.compress.plan import CompressSettings, fingerprint, teacher_identity
from polydistill.compress.stages import STAGES, Context
from polydistill.errors import PolydistillError, require
from polydistill.io import COMPRESS_FILE
from polydistill.steps import StepOutputGone, differs_in

FINGERPRINT_FILE = COMPRESS_FILE

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


# ---------------------------------------------------------------------------------------------- data
def load_data(settings: CompressSettings, teacher: str | None = None):
    """(KD data, evaluation data, KD languages, unseen languages, seen languages, notes): the KD languages'
    training data (``--fraction``, dev capped at ``--max-dev-per-language``) and the test split of the KD
    and unseen languages (capped at ``--max-test-per-language``), with the refusals of impossible
    language choices."""
    from polydistill.data.languages import resolve_languages
    from polydistill.data.load import get_adapter, load_capped_task_data
    from polydistill.evaluate.evaluate import training_languages

    s = settings
    adapter = get_adapter(s.dataset)
    teacher_langs = training_languages(teacher or s.teacher, adapter.name)
    notes = []
    languages = s.languages
    if languages == "all" and teacher_langs:  # the default: the teacher's own training languages
        languages = teacher_langs
        notes.append(f"--languages not given: the teacher's training languages {' '.join(teacher_langs)}")
    train = load_capped_task_data(s.dataset, languages=languages, data_root=s.data_root, fraction=s.fraction,
                                  seed=s.seed, purpose="train", max_dev_per_language=s.max_dev_per_language)
    kd = list(train.languages)
    unseen = resolve_languages(s.unseen_languages, adapter.valid, adapter.named, adapter.name) \
        if s.unseen_languages else []
    both = [la for la in unseen if la in kd]
    require(not both, f"{' '.join(both)} {'is' if len(both) == 1 else 'are'} both in --languages and "
                      "--unseen-languages; an unseen language is never trained on.")
    _check_unlabelled_languages(s, kd, unseen)
    if teacher_langs is None:
        seen = kd
        notes.append(f"the teacher has no fine-tuning record for {train.name} (run.json): seen = the KD languages")
    else:
        extra = [la for la in kd if la not in teacher_langs]
        require(not extra, f"--languages {' '.join(extra)}: the teacher was not fine-tuned on "
                           f"{'it' if len(extra) == 1 else 'them'} (its run.json names {' '.join(teacher_langs)}); "
                           "distil its training languages and report others with --unseen-languages.")
        trained = [la for la in unseen if la in teacher_langs]
        require(not trained, f"--unseen-languages {' '.join(trained)}: the teacher was fine-tuned on "
                             f"{'it' if len(trained) == 1 else 'them'}, so {'it is' if len(trained) == 1 else 'they are'} "
                             "not unseen.")
        seen = list(teacher_langs)
    evaluation = load_capped_task_data(s.dataset, languages=[*kd, *unseen], data_root=s.data_root, purpose="evaluate",
                                       max_test_per_language=s.max_test_per_language)
    require(len(evaluation.splits["test"]) > 0, f"{evaluation.name} has no test examples for "
                                                f"{' '.join([*kd, *unseen])}; compress evaluates on the test split.")
    tested = set(evaluation.splits["test"]["language"])
    untested = [la for la in [*kd, *unseen] if la not in tested]
    require(not untested, f"{' '.join(untested)} {'has' if len(untested) == 1 else 'have'} no test examples in "
                          f"{evaluation.name}, so {'its' if len(untested) == 1 else 'their'} retention could not be "
                          "reported; drop it from --languages / --unseen-languages, or add test data.")
    held = set(evaluation.splits["validation"]["language"]) if "validation" in evaluation.splits else set()
    without = [la for la in [*kd, *unseen] if la not in held]
    require(s.vocab_coverage is None or not without,
            f"--vocab-coverage needs validation text of every language to target it on, and {' '.join(without)} "
            f"{'has' if len(without) == 1 else 'have'} none; drop --vocab-coverage (the vocabulary then uses "
            "thresholds).")
    return train, evaluation, kd, unseen, seen, notes


def _check_unlabelled_languages(s: CompressSettings, kd: list[str], unseen: list[str]) -> None:
    """Unlabelled DATASET:LANGUAGES text is tokenized with the reduced vocabulary, which keeps the KD and
    unseen languages only: other languages are refused (a file is taken as it is)."""
    from polydistill.data.unlabelled import parse_source

    if not s.unlabelled_data:
        return
    kind, name, languages = parse_source(s.unlabelled_data)
    if kind != "dataset":
        return
    from polydistill.data.languages import resolve_languages
    from polydistill.data.load import get_adapter
    from polydistill.lang.vocab_sources import language_key

    adapter = get_adapter(name)
    codes = resolve_languages(str(languages) or "all", adapter.valid, adapter.named, adapter.name)
    kept = {language_key(code) for code in [*kd, *unseen]}
    outside = [code for code in codes if language_key(code) not in kept]
    one = len(outside) == 1
    require(not outside, f"--unlabelled-data {s.unlabelled_data}: {' '.join(outside)} {'is' if one else 'are'} "
                         "neither in --languages nor in --unseen-languages, so the reduced vocabulary would not "
                         f"cover {'its' if one else 'their'} text; add {'it' if one else 'them'} to "
                         f"--unseen-languages ({'its' if one else 'their'} vocabulary is then kept).")


def load_augmentation(settings: CompressSettings, task: str):
    """The unlabelled KD inputs of ``--unlabelled-data`` (at most ``--unlabelled-max``, sampled with the
    run's seed), or None without it."""
    if not settings.unlabelled_data:
        return None
    from polydistill.data.unlabelled import load_unlabelled

    return load_unlabelled(settings.unlabelled_data, task, settings.data_root, settings.unlabelled_max, settings.seed)


# ------------------------------------------------------------------------------------------- checks
def _check_upfront(s: CompressSettings, config) -> None:
    from polydistill.architectures import task_of
    from polydistill.compress.plan import requested_architecture, teacher_architecture

    require(task_of(config) != "base", f"The teacher {s.teacher} has no task head (a bare encoder); fine-tune it "
                                       "first: polydistill finetune MODEL --dataset D --out teacher/.")
    require(not (s.target_speedup is not None and s.size),
            "Give either --size or --target-speedup (which picks the size by measured speed), not both.")
    require(not (s.budget_minutes is not None and s.training.max_steps),
            "Give either --budget-minutes (which fits the number of KD steps) or --max-steps, not both.")
    if s.target_speedup is not None:
        require(s.target_speedup > 1, f"--target-speedup {s.target_speedup:g} asks for no speed-up; give a factor "
                                      "above 1, e.g. 15.")
    teacher = teacher_architecture(config)
    if s.target_speedup is None:
        students = [requested_architecture(s, teacher)]  # refuses impossible sizes
    else:
        from polydistill.compress.plan import candidate_architectures

        students = candidate_architectures(s, teacher)  # the plan stage picks one of these by measured speed
    from polydistill.compress.stages import check_kd_weights
    from polydistill.student.layer_maps import explicit_length, resolve_layer_map

    # --kd-term, as the KD stage (the 5th) will resolve it: rel's default weight depends on the width the plan picks
    for width_changes in sorted({arch.changes_width(teacher) for arch in students}, reverse=True):
        check_kd_weights(s.kd_weights, width_changes)
    # --layer-map, as the depth stage will resolve it for the student's depth (known here unless the plan picks it)
    depths = sorted({arch.layers for arch in students})
    listed = explicit_length(s.layer_map)
    require(listed is None or len(depths) == 1,
            f"--layer-map {s.layer_map} lists {listed} teacher layers, a fixed depth, but --target-speedup picks the "
            f"student's depth by measured speed; add --layers {listed} (the speed-up search then keeps that depth) "
            "or give a named map such as alternate-last.")
    if s.layer_map.strip().lower() != "importance":
        resolve_layer_map(s.layer_map, teacher.layers, depths[0] if len(depths) == 1 else 1)
    # --runtime: the int8 stage (the 6th) needs its packages
    if s.runtime == "onnx-int8-unfused":
        from polydistill.export.runtime import require_runtime

        require_runtime()
    elif s.runtime != "auto":  # auto times the runtimes this machine has
        from polydistill.export.runtimes import require_packages

        require_packages(s.runtime)
    from polydistill.architectures import get_adapter

    limit = get_adapter(config).position_limit(config)
    too_long = [n for n in s.bench_lengths if limit and n > limit]
    require(not too_long, f"--bench-lengths {too_long} exceed the teacher's {limit} positions; pass shorter lengths.")
    if s.push_to_hub:
        from polydistill.hub import check_repo_id

        check_repo_id(s.push_to_hub)
    require(s.unlabelled_max is None or s.unlabelled_data,
            "--unlabelled-max caps --unlabelled-data; give the unlabelled data too, or drop --unlabelled-max.")
    if s.unlabelled_data:  # the source's form and dataset name, before any data is read
        from polydistill.data.unlabelled import parse_source

        kind, name, _ = parse_source(s.unlabelled_data)
        if kind == "dataset":
            from polydistill.data.load import get_adapter as dataset_adapter  # not the architecture's above

            dataset_adapter(name)


def _claim(root: Path, fp: dict[str, Any], overwrite: bool) -> bool:
    """Make ``root`` (already through the output preflight) this command's: True when it already holds this
    command's run (resume). With ``overwrite``, an earlier run is set aside (renamed, not deleted) until the new
    one finishes."""
    from polydistill.compress.records import CompressRecord
    from polydistill.io import is_polydistill_output, read_record

    _restore_previous(root)  # an --overwrite run that was killed: the earlier result comes back first
    record_path = root / FINGERPRINT_FILE
    if record_path.is_file():
        old = read_record(record_path, CompressRecord)["fingerprint"]
        if old == fp and not overwrite:
            return True
        if not overwrite:
            shown = differs_in(old, fp, strip="settings.")
            raise PolydistillError(f"{root} holds a compress run of another command (it differs in {shown}); pass "
                                   "--overwrite to start afresh, or use another --out.")
        _previous(root).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root, _previous(root))
        return False
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise PolydistillError(f"Output directory {root} already exists and holds no compress run; choose another "
                                   "--out or pass --overwrite.")
        leftover = {p.name for p in root.iterdir()} <= {"stages"}  # a run that stopped before its plan was done
        if not leftover and not is_polydistill_output(root):
            raise PolydistillError(f"{root} is not an output of polydistill, and --overwrite only replaces "
                                   "polydistill's own outputs; choose another --out, or remove it yourself.")
        os.replace(root, _previous(root))
    return False


def _previous(root: Path) -> Path:
    """Where ``--overwrite`` keeps the earlier run until the new one has finished."""
    return root.with_name(f".{root.name}.previous")


def _restore_previous(root: Path) -> None:
    if _previous(root).is_dir():
        if root.exists():
            shutil.rmtree(root)
        os.replace(_previous(root), root)


@contextlib.contextmanager
def _claimed(root: Path, fp: dict[str, Any], overwrite: bool) -> Iterator[bool]:
    """:func:`_claim` for the duration of a run: a run that replaces an earlier one and fails (an error,
    Ctrl-C) gives the earlier result back byte for byte; one that finishes drops it."""
    resumed = _claim(root, fp, overwrite)
    try:
        yield resumed
    except BaseException:
        _restore_previous(root)
        raise
    shutil.rmtree(_previous(root), ignore_errors=True)


# ---------------------------------------------------------------------------------------------- run
def compress(settings: CompressSettings | dict[str, Any] | None = None, *,
             on_event: Callable[[dict[str, Any]], None] | None = None,
             say: Callable[[str], None] | None = None, **fields: Any) -> CompressResult:
    """Run (or resume) ``polydistill compress``; see the module docstring. ``settings`` or keyword fields of
    :class:`CompressSettings`. ``on_event`` receives ``{"kind": "start" | "done" | "skip" | "note", "stage",
    "index", "total", "eta_s", "message"}`` and ``{"kind": "step", "stage": "kd", "step", "steps"}`` for each KD
    optimiser step; ``say`` gets one-line notes."""
    from polydistill.compress import stages as stage_functions
    from polydistill.io import atomic_write_json, check_output_path, output_lock
    from polydistill.modeling import load_config

    s = settings_of(settings if settings is not None else fields)
    started = time.perf_counter()
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    total = len(STAGES)

    def emit(kind: str, stage: str | None = None, **extra: Any) -> None:
        if on_event is not None:
            on_event({"kind": kind, "stage": stage, "index": STAGES.index(stage) if stage else None, "total": total,
                      **extra})

    def note(message: str) -> None:
        emit("note", message=message)
        if say is not None:
            say(message)

    config = load_config(s.teacher)
    _check_upfront(s, config)
    from polydistill.distill.checks import check_labels

    train, evaluation, kd, unseen, seen, notes = load_data(s)
    check_labels(config, train.label_names, "teacher")
    unlabelled = load_augmentation(s, train.task)  # read up front: its errors come before any stage
    from polydistill.distill.kd import check_teacher_learned
    from polydistill.distill.settings import KDSettings

    check_teacher_learned(s.teacher, train, KDSettings(allow_weak_teacher=s.allow_weak_teacher))  # dir or hub id
    root = Path(s.out).expanduser()
    data = {"train": train.fingerprint, "evaluation": evaluation.fingerprint, "kd": kd, "unseen": unseen}
    if unlabelled is not None and s.unlabelled_data:  # its content too (a file edited since is another command)
        from polydistill.data.load import content_fingerprint

        data["unlabelled"] = content_fingerprint({"train": unlabelled}, s.unlabelled_data)
    fp = fingerprint(s, teacher_identity(s.teacher), data)
    inputs = (s.teacher, s.data_root, s.dataset, train.source, s.unlabelled_data)
    check_output_path(root, inputs=inputs)  # before the lock file is made beside it
    with output_lock(root), _claimed(root, fp, s.overwrite) as resumed_run:
        ctx = Context(settings=s, root=root, teacher_config=config, train=train, evaluation=evaluation,
                      kd_languages=kd, unseen=unseen, seen=seen, notes=notes, say=note, unlabelled=unlabelled,
                      on_step=lambda step, steps: emit("step", "kd", step=step, steps=steps))
        resumed: list[str] = []
        for name in STAGES:
            step = stage_functions.stage_step(ctx, name)
            try:
                marker = step.done() if resumed_run else None
            except StepOutputGone as gone:
                if name not in ("evaluate", "bench"):  # later stages were built from it
                    raise PolydistillError(
                        f"{root} is a finished compress run up to its {name} stage, but that stage's output "
                        f"{gone.path} was {gone.how} since; pass --overwrite to run compress afresh (the earlier "
                        "result is kept until the new one is done), or use another --out.") from None
                # nothing is built from these: the stage re-makes what is missing
                note(f"the {name} stage's output {gone.path} was {gone.how} since it finished; re-running that stage")
                marker = None
            if marker is not None:
                ctx.records[name] = marker
                resumed.append(name)
                emit("skip", name, seconds=marker["seconds"])
                continue
            eta = None
            if name == "kd":
                eta = ctx.plan["schedule"].get("estimated_seconds")
            emit("start", name, eta_s=eta)
            start = time.perf_counter()
            summary = getattr(stage_functions, f"run_{name}")(ctx)
            if name == "plan":  # the plan passed every refusal: from here on DIR belongs to this command
                from polydistill.student.card import command_line

                atomic_write_json(root / FINGERPRINT_FILE, {
                    "fingerprint": fp, "command": command_line(),
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
                resumed_run = True
            ctx.records[name] = step.finish(summary, time.perf_counter() - start)
            emit("done", name, seconds=ctx.records[name]["seconds"])
        for record in ctx.records.values():
            ctx.notes.extend(record["summary"].get("notes") or [])
        outputs = _final_outputs(ctx)
        from polydistill.compress.report import write_report

        report, files = write_report(ctx, {k: str(v) for k, v in outputs.items()})
        _card(ctx, outputs, report)
    if s.push_to_hub:
        from polydistill.hub import push_model_dir

        note(f"pushing {outputs['model']} to {s.push_to_hub} and {outputs['int8']} to {s.push_to_hub}-int8")
        push_model_dir(outputs["model"], s.push_to_hub)
        push_model_dir(outputs["int8"], f"{s.push_to_hub}-int8")
    return CompressResult(out=root, model_dir=outputs["model"], int8_dir=outputs["int8"], report=report, files=files,
                          stages=dict(ctx.records), resumed=resumed, seconds=time.perf_counter() - started,
                          test_data=evaluation)


def _final_outputs(ctx: Context) -> dict[str, Path]:
    """``DIR/model`` and ``DIR/model-int8``: copies of the KD and int8 stages' outputs (written atomically)."""
    from polydistill.io import atomic_output_dir

    outputs = {"model": ctx.root / "model", "int8": ctx.root / "model-int8"}
    for key, stage in (("model", "kd"), ("int8", "int8")):
        source = ctx.model_dir(stage)
        with atomic_output_dir(outputs[key], overwrite=True, own=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
    return outputs


def _card(ctx: Context, outputs: dict[str, Path], report: dict[str, Any]) -> None:
    """The final models' cards get the report card's targets and quality sections appended."""
    from polydistill.compress.report import render_markdown
    from polydistill.io import CARD_FILE, atomic_write_text
    from polydistill.student.card import public_report, record_test_results

    text = render_markdown(public_report(report))  # no machine paths in a card
    summary = text.split("## Speed and size", 1)[0].replace("# polydistill compress", "## polydistill compress", 1)
    for key, path in outputs.items():
        card = path / CARD_FILE
        if card.is_file():
            body = card.read_text(encoding="utf-8").split("\n## polydistill compress", 1)[0].rstrip()
            atomic_write_text(card, f"{body}\n\n{summary.rstrip()}\n")
            record_test_results(path, report, "kd" if key == "model" else key)  # the report's test F1

"""The one training core of finetune, distill and lm-distill: ``run_training(job)``.

A stage describes its run as a :class:`TrainingJob` (model, tokenised data, objective, what
identifies the run); the core does the rest, the same way for every stage:

- **preflight**: the output path is checked (parent, permissions, free space) before any work;
  a finished run of the same job is reported as done (nothing is redone: the run is a
  :class:`polydistill.steps.Step` whose marker is the output's ``run.json``, :func:`run_step`); an existing
  output of another run is refused unless ``overwrite``;
- **one writer**: the main process holds a lock on the output; a second process gets one sentence;
- **resume rule** (the checkpoints inside the run's step): ``<out>.work/`` carries the job's fingerprint (settings, data, model, teacher,
  objective); a work dir written by another run is refused, naming what differs (``overwrite`` or
  ``resume=False`` start it fresh); otherwise training resumes from its last complete checkpoint;
- **training** through :class:`~polydistill.distill.trainer.PolydistillTrainer` (per-term logging,
  NaN/inf stop naming step and term; a checkpoint whose weights are not finite is deleted);
- **hand-over**: the best model by dev F1 (ties broken by dev loss), its tokenizer, provenance,
  model card, ``run.json`` (settings, data, fingerprint, result, versions), ``log.jsonl`` and
  ``tensorboard/`` (when TensorBoard is installed) move to ``output_dir`` in one atomic rename;
- **ranks**: under torchrun / accelerate only the main process writes, logs and prints; the others
  wait at a barrier; the work dir is removed after everyone is done.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import pickle
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from polydistill.distill.checkpoints import last_complete_checkpoint
from polydistill.distill.settings import TRACKERS, TrainSettings
from polydistill.errors import PolydistillError, TrainingDiverged
from polydistill.io import (
    LOG_FILE,
    RUN_FILE,
    atomic_write_json,
    check_output_dir,
    output_lock,
    package_versions,
    read_json,
)
from polydistill.logs import interactive
from polydistill.steps import Step, StepOutputGone, differences
from polydistill.student.card import command_line
from polydistill.student.model_dir import save_model_dir
from polydistill.student.provenance import Provenance

FINGERPRINT_FILE = "fingerprint.json"
DIVERGED_FILE = "diverged.json"  # in a work dir: its run stopped on a non-finite loss or weights
CHECKPOINTS = "checkpoints"


@dataclass
class RunResult:
    """What a training run hands to the next stage (evaluation, the experiment store)."""

    output_dir: Path  # the best model, an ordinary HF directory (safetensors + tokenizer)
    best_dev_f1: float | None
    dev_metrics: dict[str, float]
    log_history: list[dict[str, Any]]  # Trainer log history, incl. per-term losses (loss_att, ...)
    train_seconds: float
    global_step: int = 0
    resumed_from: str | None = None
    already_done: bool = False  # the same run had finished before: nothing was trained
    extra: dict[str, Any] = field(default_factory=dict)  # stage record: layer map, KD settings, provenance

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        return out


@dataclass
class TrainingJob:
    """Everything a stage hands to :func:`run_training`."""

    stage: str  # finetune | distill | lm-distill
    settings: TrainSettings
    model: Any  # the model to train (a transformers PreTrainedModel)
    tokenizer: Any
    train_dataset: Any  # tokenised datasets
    eval_dataset: Any
    collator: Callable
    objective: list  # [ActiveTerm]
    identity: dict[str, Any]  # besides the settings: what makes this run this run (data, model, teacher, ...)
    compute_metrics: Callable | None = None
    best_metric: str = "selection"  # dev F1, ties broken by dev loss (PolydistillTrainer.evaluate)
    greater_is_better: bool = True
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # teacher, kd, layer_map, ...
    argument_overrides: dict[str, Any] = field(default_factory=dict)  # extra TrainingArguments
    callbacks: list = field(default_factory=list)
    trainer_class: type | None = None  # a PolydistillTrainer subclass (default: PolydistillTrainer itself)
    provenance: Provenance | None = None
    source: str | None = None  # where the model came from (a directory or hub id)
    record: dict[str, Any] = field(default_factory=dict)  # extra run.json fields (data, teacher, kd, ...)
    extra_files: Callable[[Path], None] | None = None  # writes stage-specific files into the output
    finish: Callable[[Any, dict[str, float]], dict[str, Any]] | None = None  # (trainer, dev) → more record
    initialise: Callable[[Any], dict[str, Any]] | None = None  # on a fresh start only: model → record


# ---------------------------------------------------------------------------- fingerprints


def model_digest(model) -> str:
    """A cheap digest of a model's weights: names, shapes, dtypes and 4096 evenly spaced values of
    every tensor. Tells apart different checkpoints, seeds and sizes in well under a second."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // 4096)
            digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
            digest.update(flat[::step].float().cpu().numpy().tobytes())
    return digest.hexdigest()


def step_report_callback(report: Callable[[int, int], None] | None) -> list:
    """``callbacks=`` for a training call: a TrainerCallback telling ``report(step, max_steps)`` after each
    optimiser step (a progress display's bar and ETA); none when ``report`` is None."""
    if report is None:
        return []
    from transformers import TrainerCallback

    tell = report  # not None (a type checker does not carry that into the class below)

    class StepReport(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            tell(state.global_step, state.max_steps)

    return [StepReport()]


def fingerprint_of(stage: str, settings: TrainSettings, identity: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run: its stage, its settings (less the run-only ones) and ``identity``."""
    return json.loads(json.dumps({"stage": stage, "settings": settings.identity(), **identity}, default=str))


# ---------------------------------------------------------------------------- TrainingArguments


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def training_arguments(settings: TrainSettings, precision: str, best_metric: str = "selection",
                       greater_is_better: bool = True, **overrides):
    from transformers import TrainingArguments

    strategy = "steps" if settings.eval_steps else "epoch"
    cuda = _cuda_available()
    kwargs: dict[str, Any] = dict(
        output_dir=str(settings.work_dir / CHECKPOINTS),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps or -1,
        learning_rate=settings.learning_rate,  # AdamW with the library's other defaults (Wibowo et al. 2024, §3)
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size or settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        use_cpu=not cuda,  # also what makes torchrun / accelerate distribute over CPU processes (gloo)
        seed=settings.seed,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=settings.eval_steps,
        save_steps=settings.eval_steps or 500,
        logging_steps=settings.logging_steps,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=best_metric,
        greater_is_better=greater_is_better,
        # the trackers the user named (TensorBoard is attached explicitly, with a log dir inside the run)
        report_to=[name for name in settings.trackers if name != "tensorboard"] or "none",
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,  # pinning without a GPU only warns
        disable_tqdm=not (settings.progress and interactive()),  # no bars in a redirected log
        remove_unused_columns=False,  # our collators drop what the model cannot take
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


# ---------------------------------------------------------------------------- callbacks


def _callbacks(job: TrainingJob, work: Path, main: bool) -> list:
    from transformers import EarlyStoppingCallback, TrainerCallback

    class JsonlLog(TrainerCallback):
        """Append every log record (train loss terms, eval metrics) to ``log.jsonl`` (main process)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with (work / LOG_FILE).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

    class FiniteWeights(TrainerCallback):
        """A checkpoint whose weights turned NaN/inf (a finite loss, then a bad update) is deleted and
        the run stops: resuming must never start from it, and it must never become the best model."""

        def on_save(self, args, state, control, model=None, **kwargs):
            import torch

            bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
            if bad:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if state.is_world_process_zero:
                    shutil.rmtree(folder, ignore_errors=True)
                last = last_complete_checkpoint(Path(args.output_dir), prune=False)
                kept = f"the last good checkpoint is {last}" if last else "no good checkpoint had been saved"
                raise TrainingDiverged(
                    f"Training stopped at step {state.global_step}: the weights are no longer finite "
                    f"({bad[0]} and {len(bad) - 1} more); {kept}. Lower the learning rate and re-run (a changed "
                    "learning rate starts afresh)."
                )

    callbacks: list = [JsonlLog(), FiniteWeights(), *job.callbacks]
    tensorboard = _tensorboard_callback(work / "tensorboard") if main else None
    if tensorboard is not None:
        callbacks.append(tensorboard)
    if job.settings.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=job.settings.early_stopping_patience))
    return callbacks


def check_trackers(trackers: list[str]) -> None:
    """Each tracker of ``--report-to`` has its package, before any slow work (one sentence otherwise)."""
    for name in trackers:
        package = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            hint = "pip install polydistill[tensorboard]" if name == "tensorboard" else f"pip install {package}"
            raise PolydistillError(f"--report-to {name} needs the {package} package; install it ({hint}) or drop "
                                   f"{name} from --report-to.")


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _tensorboard_callback(log_dir: Path):
    """TensorBoard logging when the package is installed (``pip install polydistill[tensorboard]``);
    without it every term is still in ``log.jsonl`` and run.json says ``"tensorboard": false``."""
    if not tensorboard_available():
        return None
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def _quiet_progress():
    """The Trainer's progress bar without its printed log dicts (they go to log.jsonl/TensorBoard)."""
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return QuietProgress


def _plain_progress():
    """What a redirected log gets instead of bars: one plain line per logged step (losses, dev metrics)."""
    from transformers import TrainerCallback

    class PlainProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: v for k, v in (logs or {}).items() if isinstance(v, int | float) and k not in ("epoch", "total_flos")
                     and not k.endswith(("_runtime", "_per_second"))}  # losses and metrics, not timing
            if shown:
                values = ", ".join(f"{k} {v:.4g}" for k, v in shown.items())
                print(f"step {state.global_step}/{state.max_steps}: {values}", file=sys.stderr, flush=True)

    return PlainProgress


# ---------------------------------------------------------------------------- the run


@with_config(ConfigDict(extra="allow", strict=True))  # a number written as text is refused, not converted
class RecordedResult(TypedDict, total=False):
    """``run.json``'s ``result``: the numbers a finished run's "nothing to do" line and the grids read back."""

    best_dev_f1: float | None
    train_seconds: float
    global_step: int


class RunRecord(BaseModel):
    """The fields of ``run.json`` that resuming reads back (the rest is free-form provenance)."""

    model_config = ConfigDict(extra="allow")

    fingerprint: dict[str, Any]
    result: RecordedResult = Field(default_factory=lambda: RecordedResult())
    teacher_cache: dict[str, Any] | None = None  # what KD did with the teacher-output cache (built / skipped …)
    weight_files: dict[str, str] | None = None  # SHA-256 of each weight file (runs since 2026-12-07)


def run_step(out: Path, stage: str, fingerprint: dict[str, Any]) -> Step:
    """A run of the training core as a :class:`polydistill.steps.Step`: its folder and output the model
    directory ``out``, its marker the ``run.json`` the hand-over writes inside it (read through :class:`RunRecord`;
    its ``fingerprint`` is the identity, its ``weight_files`` the digests). A ``run.json`` of another fingerprint
    is not this run's (the output preflight refuses or, with ``--overwrite``, replaces it); its checkpoints stay
    inside the run (``<out>.work``)."""
    return Step(name=stage, folder=out, settings=fingerprint, outputs=(out,), marker_file=out / RUN_FILE,
                schema=RunRecord, recorded=_fingerprint_of_run, others="ignore",
                remedy="pass --overwrite to train again")


def _fingerprint_of_run(record: dict[str, Any]) -> dict[str, Any]:
    return record["fingerprint"]


def finished_result(out: Path, fingerprint: dict[str, Any], stage: str = "training",
                    overwrite: bool = False) -> RunResult | None:
    """The result of a finished run of exactly this job in ``out`` (its step is done), or None. A finished run
    whose weight files changed since (truncated, replaced) is refused in one sentence, never reported as done
    (with ``overwrite``: it is trained again)."""
    try:
        record = run_step(out, stage, fingerprint).done()
    except StepOutputGone as gone:
        if overwrite:
            return None
        what = f"weights ({gone.path.name}) changed" if gone.how == "changed" else "config or weights were deleted"
        raise PolydistillError(f"{out} holds this finished run, but its {what} since it finished; restore them, "
                               "or pass --overwrite to train again.") from None
    if record is None:
        return None
    saved = record["result"]
    history = []
    if (out / LOG_FILE).is_file():
        history = [json.loads(line) for line in (out / LOG_FILE).read_text(encoding="utf-8").splitlines() if line]
    return RunResult(output_dir=out, best_dev_f1=saved.get("best_dev_f1"), dev_metrics=saved.get("dev_metrics", {}),
                     log_history=history, train_seconds=saved.get("train_seconds", 0.0),
                     global_step=saved.get("global_step", 0), resumed_from=saved.get("resumed_from"),
                     already_done=True)


_CLAIMED: dict[Path, dict[str, Any]] = {}  # work dirs this process holds, with their fingerprints


@contextlib.contextmanager
def claimed_run(fingerprint: dict[str, Any], settings: TrainSettings, main: bool = True) -> Iterator[Path]:
    """Hold a run's output: lock it (main process), then make ``<out>.work/`` this run's: refuse (or,
    with overwrite / no resume, clear) a work dir another run wrote, and record the fingerprint.

    Re-entrant: a stage with slow work before training (lm-distill's teacher-head fit, cached in the
    work dir) claims the run first; the core's claim inside it is then a no-op."""
    work = settings.work_dir
    key = work.resolve()
    if key in _CLAIMED:
        if _CLAIMED[key] != fingerprint:
            raise RuntimeError(f"{work} is already claimed by this process for another run")  # a stage bug
        yield work
        return
    with output_lock(settings.output_dir) if main else contextlib.nullcontext():
        _check_work_dir(work, fingerprint, settings, main)
        if main:
            work.mkdir(parents=True, exist_ok=True)
            atomic_write_json(work / FINGERPRINT_FILE, fingerprint)
        _CLAIMED[key] = fingerprint
        try:
            yield work
        finally:
            _CLAIMED.pop(key, None)


def _check_work_dir(work: Path, fingerprint: dict[str, Any], settings: TrainSettings, main: bool) -> None:
    path = work / FINGERPRINT_FILE
    has_checkpoints = any((work / CHECKPOINTS).glob("checkpoint-*")) if (work / CHECKPOINTS).is_dir() else False
    if not path.is_file() and not has_checkpoints:
        return
    previous = read_json(path) if path.is_file() else {}
    if previous == fingerprint and settings.resume:
        return
    diverged = (work / DIVERGED_FILE).is_file()
    if settings.overwrite or not settings.resume or diverged:
        if main:
            if diverged and not settings.overwrite:
                print(f"note: {work} holds a run that stopped on a non-finite loss; the changed settings start "
                      "afresh there.", file=sys.stderr, flush=True)
            shutil.rmtree(work, ignore_errors=True)
        return
    differs = differences(previous, fingerprint) if previous else ["(no fingerprint: an older polydistill)"]
    raise PolydistillError(
        f"{work} holds checkpoints of another run (it differs in {', '.join(differs[:6])}"
        f"{' …' if len(differs) > 6 else ''}); pass --overwrite to start afresh, or use another --out."
    )


def _expected_bytes(model, settings: TrainSettings) -> int:
    """Disk a run needs: the final model plus ``save_total_limit`` checkpoints (weights + AdamW state)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return weights + settings.save_total_limit * (weights + 2 * trainable)


def _open_checkpoint_errors():
    from safetensors import SafetensorError

    return (pickle.UnpicklingError, EOFError, SafetensorError, RuntimeError, ValueError, KeyError)


def run_training(job: TrainingJob) -> RunResult:
    """Train ``job.model`` on ``job``'s data and hand the best model over to ``settings.output_dir``."""
    from polydistill.distill.precision import resolve_precision
    from polydistill.distill.trainer import PolydistillTrainer, detach_projection

    settings = job.settings
    out, work = settings.output_dir, settings.work_dir
    fingerprint = fingerprint_of(job.stage, settings, job.identity)
    done = finished_result(out, fingerprint, job.stage, settings.overwrite)
    if done is not None:
        _push(settings)
        return done
    check_output_dir(out, settings.overwrite, _expected_bytes(job.model, settings), inputs=(job.source,))
    resolved = resolve_precision(settings.precision)
    precision = resolved.name
    logging.getLogger(__name__).info("precision %s", resolved.reason)  # shown with -v
    check_trackers(settings.trackers)
    args = training_arguments(settings, precision, job.best_metric, job.greater_is_better, **job.argument_overrides)
    main = args.process_index == 0
    with claimed_run(fingerprint, settings, main):
        _barrier(args)
        trainer = (job.trainer_class or PolydistillTrainer)(
            model=job.model, args=args, train_dataset=job.train_dataset, eval_dataset=job.eval_dataset,
            data_collator=job.collator, processing_class=job.tokenizer, compute_metrics=job.compute_metrics,
            callbacks=_callbacks(job, work, main), objective=job.objective, **job.trainer_kwargs,
        )
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        if settings.progress and main:
            trainer.add_callback(_quiet_progress() if interactive() else _plain_progress())
        last = last_complete_checkpoint(work / CHECKPOINTS) if settings.resume else None
        initialised = job.initialise(job.model) if job.initialise and last is None else None
        start = time.perf_counter()
        try:
            _train(trainer, last, work)
            seconds = time.perf_counter() - start
            dev = trainer.evaluate()  # the best checkpoint (load_best_model_at_end) on the dev split
        finally:
            trainer.release_models()
        dev_metrics = {k.removeprefix("eval_"): float(v) for k, v in dev.items()
                       if isinstance(v, int | float) and k != "eval_selection"}
        record = job.finish(trainer, dev_metrics) if job.finish else {}
        if initialised is not None:
            record["head_init"] = initialised
        if getattr(trainer, "cache_record", None):
            record["teacher_cache"] = trainer.cache_record
        if args.world_size > 1:
            record["ranks"] = {"world_size": args.world_size, "weights_in_sync": _weights_in_sync(trainer)}
        detach_projection(trainer.model)
        result = RunResult(
            output_dir=out, best_dev_f1=dev_metrics.get("f1"), dev_metrics=dev_metrics,
            log_history=list(trainer.state.log_history), train_seconds=round(seconds, 2),
            global_step=trainer.state.global_step, resumed_from=last, extra={**job.record, **record},
        )
        if main:
            _hand_over(job, trainer, result, fingerprint, precision)
        _barrier(args)
        if main and not settings.keep_checkpoints:
            shutil.rmtree(work, ignore_errors=True)
    _push(settings)
    return result


def _push(settings: TrainSettings) -> None:
    """``--push-to-hub``: the finished model directory to the Hub, from the main process (one code path:
    ``hub.push_model_dir``)."""
    from polydistill.ranks import is_main_process

    if settings.push_to_hub and is_main_process():
        from polydistill.hub import push_model_dir

        push_model_dir(settings.output_dir, settings.push_to_hub)


def _train(trainer, checkpoint: str | None, work: Path) -> None:
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    except TrainingDiverged as err:
        if trainer.args.process_index == 0:  # the advertised remedy (a changed setting) starts afresh
            atomic_write_json(work / DIVERGED_FILE, {"step": trainer.state.global_step, "error": str(err)})
        raise
    except _open_checkpoint_errors() as err:
        if checkpoint is None or not _is_checkpoint_error(err):
            raise
        detail = str(err).splitlines()[0] if str(err).strip() else ""
        if len(detail) > 160:
            detail = detail[:160].rsplit(" ", 1)[0] + " …"
        raise PolydistillError(
            f"The checkpoint {checkpoint} cannot be read ({type(err).__name__}: {detail}); "
            "delete it, or pass --overwrite to start afresh."
        ) from None


def _is_checkpoint_error(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(word in text for word in ("unpickl", "pickle", "eof", "safetensor", "header", "corrupt",
                                         "invalid load key", "ran out of input", "weights only load failed"))


def _weights_in_sync(trainer) -> bool:
    """Whether every process ends with the same trainable weights (student and KD modules such as W):
    per-parameter sums gathered from all ranks must agree."""
    import torch

    model = getattr(trainer.model, "module", trainer.model)
    sums = torch.stack([p.detach().double().sum() for p in model.parameters() if p.requires_grad])
    gathered = trainer.accelerator.gather(sums.to(trainer.args.device)[None]).reshape(trainer.args.world_size, -1)
    return bool((gathered == gathered[0]).all())


def _barrier(args) -> None:
    if args.world_size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # the state TrainingArguments set up (backend, device)


def _hand_over(job: TrainingJob, trainer, result: RunResult, fingerprint: dict[str, Any], precision: str) -> None:
    settings, work = job.settings, job.settings.work_dir
    run = {
        "stage": job.stage,
        **job.record,
        "settings": json.loads(settings.model_dump_json()),
        "precision": precision,
        "source": job.source,
        "fingerprint": fingerprint,
        "tensorboard": tensorboard_available(),
        "command": command_line(),
        "result": {k: v for k, v in result.to_dict().items() if k not in ("log_history", "extra", "already_done")},
        "versions": package_versions(),
        **{k: v for k, v in result.extra.items() if k not in job.record},
    }
    with save_model_dir(settings.output_dir, job.stage, model=trainer.model, tokenizer=job.tokenizer,
                        provenance=job.provenance, run=run, source=job.source, overwrite=settings.overwrite) as target:
        tmp = target.path
        run["weight_files"] = run_step(tmp, job.stage, fingerprint).digests()  # what done() checks, in place
        if (work / LOG_FILE).is_file():
            shutil.copy2(work / LOG_FILE, tmp / LOG_FILE)
        if (work / "tensorboard").is_dir():
            shutil.copytree(work / "tensorboard", tmp / "tensorboard")
        if job.extra_files is not None:
            job.extra_files(tmp)

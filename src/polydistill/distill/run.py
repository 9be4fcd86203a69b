"""What fine-tuning and KD share: model/tokenizer resolution, TrainingArguments, the run loop
with resume, per-term logging, and the atomic hand-over of the best model.

Layout of a run: checkpoints, TensorBoard events and ``log.jsonl`` grow in ``<output_dir>.work/``;
when training finishes, the best model (by dev F1) is saved with its tokenizer as an ordinary
Hugging Face directory at ``output_dir`` (one atomic rename) together with ``run.json`` (settings,
dev metrics, versions), ``log.jsonl`` and ``tensorboard/``. A run interrupted (or stopped by a NaN)
keeps ``<output_dir>.work/``; re-running the same command resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polydistill.data.types import TaskData
from polydistill.distill.checks import check_labels, labels_compatible, model_task
from polydistill.distill.settings import TrainSettings
from polydistill.errors import PolydistillError
from polydistill.io import atomic_output_dir, atomic_write_json, check_output_dir, package_versions
from polydistill.modeling import load_config, load_model, load_tokenizer, task_of_config
from polydistill.student.provenance import PROVENANCE_FILE


@dataclass
class RunResult:
    """What a training run hands to the next stage (evaluation, the experiment store)."""

    output_dir: Path  # the best model, an ordinary HF directory (safetensors + tokenizer)
    best_dev_f1: float | None
    dev_metrics: dict[str, float]
    log_history: list[dict[str, Any]]  # Trainer log history, incl. per-term KD losses (loss_att, ...)
    train_seconds: float
    global_step: int = 0
    resumed_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # stage record: layer map, KD settings, provenance

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output_dir"] = str(self.output_dir)
        return out


@dataclass
class Resolved:
    model: Any
    tokenizer: Any
    source: Path | None  # directory the model came from, if any
    provenance: dict | None


def _read_provenance(model_dir: Path | None) -> dict | None:
    from polydistill.student.provenance import read_provenance

    return read_provenance(model_dir) if model_dir is not None else None


def resolve_model(model, data: TaskData, tokenizer=None, who: str = "model", default_tokenizer=None) -> Resolved:
    """A path, an already-loaded model, or a ``BuiltStudent`` → a model with ``data``'s head and labels.

    A checkpoint without a task head (e.g. the e5 base model) gets a fresh head for ``data``'s labels;
    a head with a different label set is refused.
    """
    provenance = None
    source = None
    if hasattr(model, "model") and hasattr(model, "provenance"):  # BuiltStudent
        provenance = model.provenance
        tokenizer = tokenizer or getattr(model, "tokenizer", None)
        source = Path(model.path) if getattr(model, "path", None) else None
        model = model.model
    elif isinstance(model, str | Path):
        source = Path(model)
        config = load_config(source)
        if task_of_config(config) != "base":
            check_labels(config, data.label_names, who)
        config.num_labels = data.num_labels
        config.id2label, config.label2id = data.id2label, data.label2id
        model = load_model(source, task=data.task, config=config)
        tokenizer = tokenizer or load_tokenizer(source)
        provenance = _read_provenance(source)
    if model_task(model) not in ("base", data.task):
        raise PolydistillError(
            f"The {who} is a {model_task(model)} classifier but {data.name} is a {data.task} task; "
            "pass a model for this task or a base checkpoint."
        )
    if not labels_compatible(model.config, data.label_names):
        check_labels(model.config, data.label_names, who)
    # Record the dataset's label names in the model (id2label ends up in the saved config).
    model.config.id2label, model.config.label2id = data.id2label, data.label2id
    tokenizer = tokenizer or default_tokenizer
    if tokenizer is None:
        raise PolydistillError(f"No tokenizer for the {who}; pass a model directory or the tokenizer argument.")
    return Resolved(model, tokenizer, source, provenance)


def freeze_word_embeddings(model, provenance: dict | None) -> None:
    """Freeze the word-embedding table (SPEC lessons: ~30 % faster steps with a 250k vocabulary).

    Refused for a from-scratch model: frozen *random* embeddings cannot learn anything."""
    if provenance and provenance.get("init") == "from-scratch":
        raise PolydistillError(
            "Refusing --freeze-word-embeddings for a from-scratch model: its random word embeddings must be "
            "trained; drop the flag."
        )
    model.get_input_embeddings().weight.requires_grad_(False)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def training_arguments(settings: TrainSettings, **overrides):
    from transformers import TrainingArguments

    strategy = "steps" if settings.eval_steps else "epoch"
    kwargs = dict(
        output_dir=str(settings.work_dir / "checkpoints"),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        learning_rate=settings.learning_rate,  # AdamW with the library's other defaults (000 §3)
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size or settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        fp16=settings.fp16,
        bf16=settings.bf16,
        seed=settings.seed,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=settings.eval_steps,
        save_steps=settings.eval_steps or 500,
        logging_steps=settings.logging_steps,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        report_to="none",  # TensorBoard is attached explicitly, with a log dir inside the run
        dataloader_num_workers=0,
        dataloader_pin_memory=_cuda_available(),  # pinning without a GPU only warns
        disable_tqdm=not settings.progress,  # log dicts go to log.jsonl, not stdout (see _quiet_progress)
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def _jsonl_callback(path: Path):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """Append every log record (train loss terms, eval metrics) to ``log.jsonl``."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

    return JsonlLog()


def _tensorboard_callback(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback
    except ImportError:  # tensorboard is an optional extra; log.jsonl still has every term
        return None
    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))


def _prune_incomplete_checkpoints(folder: Path) -> None:
    """Delete checkpoints a kill left half written, so training resumes from the last complete one.

    The Trainer writes trainer_state.json last, and ``get_last_checkpoint`` picks the newest folder
    whether or not it is complete (the resume then fails with "Can't find a valid checkpoint")."""
    for ckpt in folder.glob("checkpoint-*") if folder.is_dir() else []:
        try:
            json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            shutil.rmtree(ckpt, ignore_errors=True)


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest resumable checkpoint in ``folder`` (half-written ones removed first), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    if not folder.is_dir():
        return None
    _prune_incomplete_checkpoints(folder)
    return get_last_checkpoint(str(folder))


def _quiet_progress():
    """The Trainer's progress bar without its printed log dicts (they go to log.jsonl/TensorBoard)."""
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return QuietProgress


def run_training(
    make_trainer: Callable[..., Any],
    resolved: Resolved,
    data: TaskData,
    settings: TrainSettings,
    stage: str,
    record: dict[str, Any],
    on_resume: Callable[[Path], None] | None = None,
) -> RunResult:
    """Tokenise, train with ``make_trainer(**trainer_kwargs)``, save the best model atomically."""
    from transformers import EarlyStoppingCallback

    from polydistill.data.tokenize import data_collator, tokenize_task_data
    from polydistill.evaluate.metrics import make_compute_metrics

    check_output_dir(settings.output_dir, settings.overwrite)
    for split in ("train", "validation"):
        if split not in data.splits or len(data.splits[split]) == 0:
            raise PolydistillError(f"{data.name} has no {split} examples; training needs train and validation splits.")
    work = settings.work_dir
    work.mkdir(parents=True, exist_ok=True)
    model, tokenizer = resolved.model, resolved.tokenizer
    tokenized = tokenize_task_data(data, tokenizer, max_length=settings.max_length, cache_dir=settings.cache_dir)

    callbacks = [_jsonl_callback(work / "log.jsonl"), _tensorboard_callback(work / "tensorboard")]
    if settings.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.early_stopping_patience))
    trainer = make_trainer(
        model=model,
        args=training_arguments(settings),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=data_collator(data.task, tokenizer),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(data.task, data.label_names),
        callbacks=[cb for cb in callbacks if cb is not None],
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if settings.progress:
        trainer.add_callback(_quiet_progress())
    last = last_complete_checkpoint(work / "checkpoints") if settings.resume else None
    if last and on_resume is not None:
        on_resume(Path(last))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    dev = trainer.evaluate()  # the best checkpoint (load_best_model_at_end) on the dev split
    dev_metrics = {k.removeprefix("eval_"): float(v) for k, v in dev.items() if isinstance(v, int | float)}

    result = RunResult(
        output_dir=settings.output_dir,
        best_dev_f1=dev_metrics.get("f1"),
        dev_metrics=dev_metrics,
        log_history=list(trainer.state.log_history),
        train_seconds=round(seconds, 2),
        global_step=trainer.state.global_step,
        resumed_from=last,
        extra=record,
    )
    with atomic_output_dir(settings.output_dir, settings.overwrite) as tmp:
        trainer.model.save_pretrained(tmp)  # safetensors (the only format in transformers 5)
        tokenizer.save_pretrained(tmp)
        if resolved.provenance:
            atomic_write_json(tmp / PROVENANCE_FILE, resolved.provenance)
        if (work / "log.jsonl").is_file():
            shutil.copy2(work / "log.jsonl", tmp / "log.jsonl")
        if (work / "tensorboard").is_dir():
            shutil.copytree(work / "tensorboard", tmp / "tensorboard")
        atomic_write_json(
            tmp / "run.json",
            {
                "stage": stage,
                "data": {"name": data.name, "task": data.task, "languages": data.languages,
                         "train": len(data.splits["train"]), "validation": len(data.splits["validation"])},
                "labels": data.label_names,
                "settings": json.loads(settings.model_dump_json()),
                "source": str(resolved.source) if resolved.source else None,
                **record,
                "result": {k: v for k, v in result.to_dict().items() if k not in ("log_history", "extra")},
                "versions": package_versions(),
            },
        )
    if not settings.keep_checkpoints:
        shutil.rmtree(work, ignore_errors=True)
    return result

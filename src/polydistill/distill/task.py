"""What fine-tuning and task KD share on a labelled task dataset: resolving the model to train (a
directory, a loaded model or a built student) with the dataset's head and labels, freezing word
embeddings, and turning a ``TaskData`` into the core's :class:`~polydistill.distill.run.TrainingJob`
(tokenised splits, collator, dev-F1 metrics, the data's identity)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.architectures import task_of
from polydistill.data.load import content_fingerprint
from polydistill.data.tokenize import data_collator, fit_max_length, tokenize_task_data
from polydistill.data.types import TaskData
from polydistill.distill.checks import check_labels, labels_compatible
from polydistill.distill.head import head_parameters, probe_head
from polydistill.distill.run import RunResult, TrainingJob, model_digest, run_training
from polydistill.distill.settings import TrainSettings
from polydistill.distill.teacher_cache import EXAMPLE_INDEX
from polydistill.errors import PolydistillError
from polydistill.evaluate.metrics import make_compute_metrics
from polydistill.modeling import load_config, load_model, load_tokenizer, resolve_model_dir
from polydistill.student.provenance import Provenance, read_provenance


@dataclass
class Resolved:
    model: Any
    tokenizer: Any
    source: str | Path | None  # directory or hub id the model came from, if any
    provenance: Provenance | None
    new_head: bool = False  # the task head is freshly initialised (not fine-tuned, not copied)


def resolve_model(model, data: TaskData, tokenizer=None, who: str = "model", default_tokenizer=None) -> Resolved:
    """A path, an already-loaded model, or a ``BuiltStudent`` → a model with ``data``'s head and labels.

    A checkpoint without a task head (e.g. the e5 base model) gets a fresh head for ``data``'s labels;
    a head with a different label set is refused.
    """
    provenance = None
    source: str | Path | None = None
    new_head = False
    if hasattr(model, "model") and hasattr(model, "provenance"):  # BuiltStudent
        provenance = model.provenance
        tokenizer = tokenizer or getattr(model, "tokenizer", None)
        source = Path(model.path) if getattr(model, "path", None) else None
        model = model.model
    elif isinstance(model, str | Path):
        source = model  # a directory or a hub id, as given (recorded in run.json and the card)
        config = load_config(source)
        tokenizer = tokenizer or load_tokenizer(source)  # before the weights: a missing tokenizer fails fast
        new_head = task_of(config) == "base"
        if not new_head:
            check_labels(config, data.label_names, who)
        config.num_labels = data.num_labels
        config.id2label, config.label2id = data.id2label, data.label2id
        model = load_model(source, task=data.task, config=config)
        provenance = read_provenance(resolve_model_dir(source))
    if provenance is not None and provenance.is_student and "head" not in provenance.copied:
        new_head = True  # from-base / from-scratch students get a fresh head
    if task_of(model) not in ("base", data.task):
        raise PolydistillError(
            f"The {who} is a {task_of(model)} classifier but {data.name} is a {data.task} task; "
            "pass a model for this task or a base checkpoint."
        )
    if not labels_compatible(model.config, data.label_names):
        check_labels(model.config, data.label_names, who)
    # Record the dataset's label names in the model (id2label ends up in the saved config).
    model.config.id2label, model.config.label2id = data.id2label, data.label2id
    tokenizer = tokenizer or default_tokenizer
    if tokenizer is None:
        raise PolydistillError(f"No tokenizer for the {who}; pass a model directory or the tokenizer argument.")
    return Resolved(model, tokenizer, source, provenance, new_head)


def freeze_word_embeddings(model, provenance: Provenance | None) -> None:
    """Freeze the word-embedding table (SPEC lessons: ~30 % faster steps with a 250k vocabulary).

    Refused for a from-scratch model: frozen *random* embeddings cannot learn anything."""
    if provenance is not None and provenance.init == "from-scratch":
        raise PolydistillError(
            "Refusing --freeze-word-embeddings for a from-scratch model: its random word embeddings must be "
            "trained; drop the flag."
        )
    model.get_input_embeddings().weight.requires_grad_(False)


def data_identity(data: TaskData) -> dict[str, Any]:
    """What identifies the training data of a run: dataset, languages and the splits' content."""
    used = {split: data.splits[split] for split in ("train", "validation")}
    return {"name": data.name, "languages": list(data.languages),
            "content": content_fingerprint(used, data.name, data.task, *data.label_names)}


def train_task(stage: str, resolved: Resolved, data: TaskData, settings: TrainSettings, objective: list,
               identity: dict[str, Any] | None = None, trainer_kwargs: dict[str, Any] | None = None,
               record: dict[str, Any] | None = None, argument_overrides: dict[str, Any] | None = None,
               teacher_cache=None, callbacks=(), unlabelled=None) -> RunResult:
    """Tokenise ``data`` and run ``objective`` on it through the training core. ``teacher_cache``: a
    function of the tokenised training split giving the trainer's teacher-cache settings (KD).
    ``unlabelled``: extra training inputs whose labels are IGNORE_INDEX (KD augmentation: they count
    in the teacher-matching terms only; see data/unlabelled.py)."""
    for split in ("train", "validation"):
        if split not in data.splits or len(data.splits[split]) == 0:
            raise PolydistillError(f"{data.name} has no {split} examples; training needs train and validation splits.")
    # no longer than the student's (and the KD teacher's) position embeddings allow, recorded as used
    max_length = fit_max_length(settings.max_length, resolved.model, (trainer_kwargs or {}).get("teacher"))
    if max_length != settings.max_length:
        settings = settings.model_copy(update={"max_length": max_length})
    trained_languages = _trained_languages(data)  # labelled languages only: the model's "seen" ones
    if unlabelled is not None and len(unlabelled):
        from datasets import concatenate_datasets

        splits = _train_splits(data)
        splits["train"] = concatenate_datasets([splits["train"], unlabelled.cast(splits["train"].features)])
        data = TaskData(name=data.name, task=data.task, label_names=data.label_names, languages=data.languages,
                        splits=splits)
    view = TaskData(name=data.name, task=data.task, label_names=data.label_names, languages=data.languages,
                    splits=_train_splits(data))  # the test split is never needed for training
    tokenized = tokenize_task_data(view, resolved.tokenizer, max_length=settings.max_length,
                                   cache_dir=settings.cache_dir)
    # NER KD with unlabelled sentences scores every word's first sub-word, not only labelled ones
    collator = data_collator(data.task, resolved.tokenizer, word_positions=unlabelled is not None)
    train_split = tokenized["train"]
    cache = teacher_cache(train_split) if teacher_cache is not None else None
    if cache and "path" in cache:  # each row carries its index, to look its teacher outputs up
        train_split = train_split.add_column(EXAMPLE_INDEX, list(range(len(train_split))))
    head = head_parameters(resolved.model) if resolved.new_head else []
    initialise = None
    # LP-FT's premise is pretrained features; a from-scratch body's are random (and the paper's
    # from-scratch rows are random everywhere), so its head stays random
    scratch = resolved.provenance is not None and resolved.provenance.init == "from-scratch"
    if resolved.new_head and settings.head_init == "probe" and not scratch:
        def initialise(model):
            return probe_head(model, tokenized["train"], collator, seed=settings.seed)
    job = TrainingJob(
        stage=stage, settings=settings, model=resolved.model, tokenizer=resolved.tokenizer,
        train_dataset=train_split, eval_dataset=tokenized["validation"],
        collator=collator, initialise=initialise, callbacks=list(callbacks),
        compute_metrics=make_compute_metrics(data.task, data.label_names),
        objective=objective,
        identity={"data": data_identity(data), "model": model_digest(resolved.model), **(identity or {})},
        trainer_kwargs={**(trainer_kwargs or {}), "head_parameters": head,
                        "head_lr_multiplier": settings.head_lr_multiplier,
                        **({"teacher_cache": cache} if cache else {})},
        argument_overrides=argument_overrides or {},
        provenance=resolved.provenance,
        source=str(resolved.source) if resolved.source else None,
        record={
            # the languages that had training examples (e.g. UNER en_ewt has no v1 train file): the
            # model's "seen" languages for evaluate's groups
            "data": {"name": data.name, "task": data.task, "languages": trained_languages,
                     "requested_languages": data.languages,
                     "train": len(data.splits["train"]), "validation": len(data.splits["validation"]),
                     "unlabelled": len(unlabelled) if unlabelled is not None else 0},
            "labels": data.label_names,
            **(record or {}),
        },
    )
    return run_training(job)


def _trained_languages(data: TaskData) -> list[str]:
    present = set(data.splits["train"]["language"])
    return [lang for lang in data.languages if lang in present] or sorted(present)


def _train_splits(data: TaskData):
    from datasets import DatasetDict

    return DatasetDict({split: data.splits[split] for split in ("train", "validation")})

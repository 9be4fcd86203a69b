"""Plain fine-tuning: the teacher, or a student without KD (the paper's NON-KD rows): the training
core with the objective ``{"ce": 1}`` (cross-entropy with the gold labels) and no teacher."""

from __future__ import annotations

from polydistill.data.types import TaskData
from polydistill.distill.run import RunResult
from polydistill.distill.settings import TrainSettings
from polydistill.distill.task import freeze_word_embeddings, resolve_model, train_task
from polydistill.distill.terms import get_term
from polydistill.distill.trainer import ActiveTerm
from polydistill.errors import require_types


def finetune(model, data: TaskData, settings: TrainSettings, tokenizer=None, callbacks=()) -> RunResult:
    """Fine-tune ``model`` (a directory, a loaded model, or a ``BuiltStudent``) on ``data`` with
    ``transformers.Trainer``: AdamW (library defaults), evaluation every ``eval_steps``, best
    checkpoint by dev F1, resume from ``<output_dir>.work/`` after an interruption.

    The best model is saved with its tokenizer and the dataset's label names at
    ``settings.output_dir``. ``callbacks``: extra ``transformers.TrainerCallback`` objects (progress, ...)."""
    from transformers import set_seed

    require_types(data=(data, TaskData, "a TaskData (polydistill.data.load_task_data)"),
                  settings=(settings, TrainSettings, "a TrainSettings (polydistill.distill.settings)"))
    set_seed(settings.seed)  # a new classification head must not depend on what ran before
    resolved = resolve_model(model, data, tokenizer)
    if settings.freeze_word_embeddings:
        freeze_word_embeddings(resolved.model, resolved.provenance)
    return train_task("finetune", resolved, data, settings, [ActiveTerm("ce", get_term("ce"), 1.0)],
                      callbacks=callbacks)

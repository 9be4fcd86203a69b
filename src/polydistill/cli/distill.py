"""``polydistill finetune`` and ``polydistill distill``: training commands (logic in polydistill.distill)."""

from __future__ import annotations

from pathlib import Path

import typer

# Options shared by both commands (typer needs them spelled out per function).
_DATA = typer.Option(..., "--dataset", "--data", help="massive | tsm | universal-ner | a directory of your own data.")
_LANGS = typer.Option("all", "--languages", help="all | seen | unseen | english | comma list of codes.")
_ROOT = typer.Option(None, "--data-root", help="Folder with massive/, tsm/, universal-ner/ (else $POLYDISTILL_DATA_ROOT / hub).")
_FRACTION = typer.Option(None, "--fraction", help="Stratified fraction of the train split (per language and label).")
_OUT = typer.Option(..., "--out", "-o", help="Output directory for the best model (HF format).")
_EPOCHS = typer.Option(3.0, "--epochs")
_LR = typer.Option(5e-5, "--lr", help="AdamW learning rate (other AdamW settings: library defaults).")
_BS = typer.Option(32, "--batch-size")
_EVAL = typer.Option(None, "--eval-steps", help="Evaluate and checkpoint every N steps (default: each epoch).")
_MAXLEN = typer.Option(128, "--max-length")
_SEED = typer.Option(0, "--seed")
_FREEZE = typer.Option(False, "--freeze-word-embeddings", help="Freeze the word-embedding table (never for from-scratch).")
_ACCUM = typer.Option(1, "--grad-accum")
_FP16 = typer.Option(False, "--fp16")
_BF16 = typer.Option(False, "--bf16")
_MAXSTEPS = typer.Option(-1, "--max-steps", help="Stop after N optimiser steps (overrides --epochs).")
_LOGSTEPS = typer.Option(50, "--logging-steps")
_RESUME = typer.Option(True, "--resume/--no-resume", help="Resume from the last checkpoint in <out>.work/.")
_OVERWRITE = typer.Option(False, "--overwrite")
_PATIENCE = typer.Option(None, "--early-stopping", help="Stop after N evaluations without dev-F1 gain.")
_THREADS = typer.Option(None, "--threads", help="torch CPU threads.")


def _settings(**kwargs):
    from pydantic import ValidationError

    from polydistill.distill.settings import TrainSettings
    from polydistill.errors import PolydistillError

    try:
        return TrainSettings(**kwargs)
    except ValidationError as err:
        raise PolydistillError(f"Invalid training settings: {err.errors()[0]['msg']} ({err.errors()[0]['loc']}).") from err


def _load(data, languages, data_root, fraction, seed):
    from polydistill.data.load import load_task_data

    return load_task_data(data, languages=languages, data_root=data_root, fraction=fraction, seed=seed)


def _report(result, what: str) -> None:
    f1 = "n/a" if result.best_dev_f1 is None else f"{100 * result.best_dev_f1:.2f}"
    typer.echo(f"{what}: best dev F1 {f1}, {result.global_step} steps in {result.train_seconds:.0f} s; "
               f"model saved to {result.output_dir}")


def finetune_command(
    model: str = typer.Argument(..., help="Model directory or hub id (a base checkpoint gets a new head)."),
    data: str = _DATA, languages: str = _LANGS, data_root: Path | None = _ROOT, fraction: float | None = _FRACTION,
    out: Path = _OUT, epochs: float = _EPOCHS, lr: float = _LR, batch_size: int = _BS, eval_steps: int | None = _EVAL,
    max_length: int = _MAXLEN, seed: int = _SEED, freeze_word_embeddings: bool = _FREEZE, grad_accum: int = _ACCUM,
    fp16: bool = _FP16, bf16: bool = _BF16, max_steps: int = _MAXSTEPS, logging_steps: int = _LOGSTEPS,
    resume: bool = _RESUME, overwrite: bool = _OVERWRITE, early_stopping: int | None = _PATIENCE,
    threads: int | None = _THREADS,
) -> None:
    """Fine-tune a teacher (or a student without KD) with best-dev-F1 checkpointing and resume."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from polydistill.distill.finetune import finetune

    settings = _settings(
        output_dir=out, epochs=epochs, learning_rate=lr, batch_size=batch_size, eval_steps=eval_steps,
        max_length=max_length, seed=seed, freeze_word_embeddings=freeze_word_embeddings, grad_accum=grad_accum,
        fp16=fp16, bf16=bf16, max_steps=max_steps, logging_steps=logging_steps, resume=resume, overwrite=overwrite,
        early_stopping_patience=early_stopping,
    )
    task_data = _load(data, languages, data_root, fraction, seed)
    _report(finetune(model, task_data, settings), "fine-tuned")


def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Fine-tuned teacher directory."),
    student: str | None = typer.Option(None, "--student", help="Student directory (polydistill student); "
                                       "omit to build one on the fly with --layers/--hidden/--init ..."),
    layers: int | None = typer.Option(None, "--layers", help="On-the-fly student depth (default: half the teacher's)."),
    student_layer_map: str = typer.Option("alternate-last", "--student-layer-map", help="Copy map of the on-the-fly student."),
    hidden: int | None = typer.Option(None, "--hidden"), intermediate: int | None = typer.Option(None, "--intermediate"),
    heads: int | None = typer.Option(None, "--heads"),
    init: str = typer.Option("from-teacher", "--init", help="from-teacher | from-base | from-scratch."),
    base: str | None = typer.Option(None, "--base", help="Pretrained checkpoint for --init from-base."),
    data: str = _DATA, languages: str = _LANGS, data_root: Path | None = _ROOT, fraction: float | None = _FRACTION,
    out: Path = _OUT, epochs: float = _EPOCHS, lr: float = _LR, batch_size: int = _BS, eval_steps: int | None = _EVAL,
    max_length: int = _MAXLEN, seed: int = _SEED, freeze_word_embeddings: bool = _FREEZE, grad_accum: int = _ACCUM,
    fp16: bool = _FP16, bf16: bool = _BF16, max_steps: int = _MAXSTEPS, logging_steps: int = _LOGSTEPS,
    resume: bool = _RESUME, overwrite: bool = _OVERWRITE, early_stopping: int | None = _PATIENCE,
    w_att: float = typer.Option(1.0, "--w-att", help="Attention-loss weight (0 = off)."),
    w_hid: float = typer.Option(1.0, "--w-hid", help="Hidden-state loss weight (0 = off)."),
    w_emb: float = typer.Option(1.0, "--w-emb", help="Embedding loss weight (0 = off)."),
    w_pred: float = typer.Option(1.0, "--w-pred", help="Prediction loss weight (0 = off)."),
    w_ce: float = typer.Option(1.0, "--w-ce", help="Cross-entropy weight (0 = off)."),
    pred_loss: str = typer.Option("mse", "--pred-loss", help="mse (paper) | kl (Hinton, ×T²)."),
    temperature: float = typer.Option(1.0, "--temperature"),
    attention: str = typer.Option("probs", "--attention", help="probs (post-softmax, default) | scores (pre-softmax)."),
    kd_layer_map: str | None = typer.Option(None, "--kd-layer-map", help="uniform (k = i·N_T/N_S) | provenance | "
                                            "0-indexed teacher layers; default: provenance, else uniform."),
    teacher_dtype: str = typer.Option("float32", "--teacher-dtype", help="float32 | bfloat16 | float16."),
    allow_untrained_teacher: bool = typer.Option(False, "--allow-untrained-teacher"),
    threads: int | None = _THREADS,
) -> None:
    """TinyBERT-style KD (att + hid + emb + pred + CE) of a fine-tuned teacher into a student."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from pydantic import ValidationError

    from polydistill.distill.settings import KDSettings
    from polydistill.distill.trainer import distill
    from polydistill.errors import PolydistillError

    settings = _settings(
        output_dir=out, epochs=epochs, learning_rate=lr, batch_size=batch_size, eval_steps=eval_steps,
        max_length=max_length, seed=seed, freeze_word_embeddings=freeze_word_embeddings, grad_accum=grad_accum,
        fp16=fp16, bf16=bf16, max_steps=max_steps, logging_steps=logging_steps, resume=resume, overwrite=overwrite,
        early_stopping_patience=early_stopping,
    )
    try:
        kd = KDSettings(att=w_att, hid=w_hid, emb=w_emb, pred=w_pred, ce=w_ce, pred_loss=pred_loss,
                        temperature=temperature, attention=attention, layer_map=kd_layer_map,
                        teacher_dtype=teacher_dtype, allow_untrained_teacher=allow_untrained_teacher)
    except ValidationError as err:
        raise PolydistillError(f"Invalid KD settings: {err.errors()[0]['msg']} ({err.errors()[0]['loc']}).") from err
    task_data = _load(data, languages, data_root, fraction, seed)
    if student is None:
        from polydistill.modeling import load_config
        from polydistill.student.build import build_student

        n_layers = layers or max(1, load_config(teacher).num_hidden_layers // 2)
        student = build_student(teacher, layers=n_layers, layer_map=student_layer_map, hidden=hidden,
                                intermediate=intermediate, heads=heads, init=init, base=base, seed=seed)
    _report(distill(teacher, student, task_data, settings, kd), "distilled")


def register(app: typer.Typer) -> None:
    app.command(name="finetune")(finetune_command)
    app.command(name="distill")(distill_command)

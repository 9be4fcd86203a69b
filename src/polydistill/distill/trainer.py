"""TinyBERT-style task distillation (000 §2.1) with a ``transformers.Trainer`` subclass.

loss = w_att·L_att + w_hid·L_hid + w_emb·L_embd + w_pred·L_pred + w_ce·CE, each term computed only
when its weight is > 0 and logged separately (``loss_att``, ``loss_hid``, ... in the Trainer log
history, ``log.jsonl`` and TensorBoard). The teacher is a plain attribute of the trainer, never
``self.model``: it is not wrapped (DDP/accelerate), not optimised, not saved; it runs in eval mode
under ``torch.no_grad`` (optionally in bf16/fp16). Only the mapped layers are captured (see
capture.py). Evaluation reports the student's own cross-entropy as ``eval_loss`` and dev F1.

Layer map: student layer i (0-indexed) is paired with teacher layer ``layer_map[i]`` (0-indexed),
outputs with outputs (hidden_states[i+1] ↔ hidden_states[layer_map[i]+1]) and attention maps with
attention maps; the embedding outputs (hidden_states[0]) are paired for L_embd. The default is the
student's provenance ``teacher_layers`` — each student layer is distilled towards the teacher layer
it was copied from — else TinyBERT's k = i·N_T/N_S (1-indexed), i.e. 0-indexed k = (i+1)·N_T/N_S − 1.
The two agree for the paper's students (alternate-last copy).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
from transformers import Trainer

from polydistill.data.types import TaskData
from polydistill.distill import losses
from polydistill.distill.capture import LayerCapture
from polydistill.distill.checks import (
    check_embedding_rows,
    check_labels,
    check_teacher_trained,
    check_vocabularies,
    model_task,
)
from polydistill.distill.run import Resolved, RunResult, freeze_word_embeddings, resolve_model, run_training
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import PolydistillError
from polydistill.modeling import load_model, load_tokenizer

PROJECTION_FILE = "kd_projection.pt"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class KDTrainer(Trainer):
    """A Trainer whose training loss is the KD objective against a frozen ``teacher``."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args, teacher: nn.Module, kd: KDSettings, layer_map: list[int], task: str,
                 projection: nn.Module | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.kd = kd
        self.weights = kd.weights
        self.task = task
        self.layer_map = list(layer_map)
        self.teacher = teacher.to(self.args.device)
        self.projection = projection.to(self.args.device) if projection is not None else None
        wanted = {"embeddings": "emb" in self.weights, "hidden": "hid" in self.weights,
                  "attention": "att" in self.weights}
        self.needs_teacher = any(name in self.weights for name in ("att", "hid", "emb", "pred"))
        n_student = len(self.layer_map)
        kind = kd.attention
        self.student_capture = LayerCapture(self.model, list(range(n_student)), attention_kind=kind, **wanted)
        self.teacher_capture = (LayerCapture(self.teacher, self.layer_map, attention_kind=kind, **wanted)
                                if self.needs_teacher else None)
        self._term_sums: dict[str, float] = {}
        self._term_count = 0

    def train(self, *args, **kwargs):
        try:
            return super().train(*args, **kwargs)
        finally:  # leave both models as they came: no hooks, their own attention implementation
            self.student_capture.remove()
            if self.teacher_capture is not None:
                self.teacher_capture.remove()

    # -- optimisation of the projection W (trained with the student, not saved inside it) ------
    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.projection is not None and not getattr(self, "_projection_added", False):
            optimizer.add_param_group({"params": list(self.projection.parameters()), "weight_decay": 0.0})
            self._projection_added = True
        return optimizer

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if self.projection is not None:
            folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
            torch.save(self.projection.state_dict(), os.path.join(folder, PROJECTION_FILE))

    # -- the loss -------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the student's own cross-entropy
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k != "labels"}
        token_mask = features["attention_mask"]
        w = self.weights
        if self.needs_teacher:
            with torch.no_grad(), self.teacher_capture.recording():
                t_out = self.teacher(**features, output_attentions=self.teacher_capture.needs_output_attentions)
                t_maps = (self.teacher_capture.attention_maps(token_mask, self.kd.attention, t_out.attentions)
                          if "att" in w else None)
                t_hidden = self.teacher_capture.hidden_states() if "hid" in w else None
                t_emb = self.teacher_capture.records.embeddings
        with self.student_capture.recording():
            s_out = model(**features, output_attentions=self.student_capture.needs_output_attentions)
        cap = self.student_capture
        terms: dict[str, torch.Tensor] = {}
        if "att" in w:
            s_maps = cap.attention_maps(token_mask, self.kd.attention, s_out.attentions)
            terms["att"] = losses.attention_loss(s_maps, t_maps, token_mask)
        if "hid" in w:
            terms["hid"] = losses.hidden_loss(cap.hidden_states(), t_hidden, token_mask, self.projection)
        if "emb" in w:
            terms["emb"] = losses.embedding_loss(cap.records.embeddings, t_emb, token_mask, self.projection)
        label_mask = labels != losses.IGNORE_INDEX if self.task == "token" else None
        if "pred" in w:
            terms["pred"] = losses.prediction_loss(
                s_out.logits, t_out.logits, self.kd.pred_loss, self.kd.temperature, label_mask
            )
        if "ce" in w:
            terms["ce"] = losses.classification_loss(s_out.logits, labels)
        self.student_capture.clear()
        if self.teacher_capture is not None:
            self.teacher_capture.clear()
        self._check_and_record(terms)
        loss = sum(w[name] * value for name, value in terms.items())
        return (loss, s_out) if return_outputs else loss

    def _check_and_record(self, terms: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()
        for name, value in zip(terms, values, strict=True):
            if not math.isfinite(value):
                raise PolydistillError(self._nan_message(name, value))
            self._term_sums[name] = self._term_sums.get(name, 0.0) + value
        self._term_count += 1

    def _nan_message(self, name: str, value: float) -> str:
        from transformers.trainer_utils import get_last_checkpoint

        run_dir = self.args.output_dir
        last = get_last_checkpoint(run_dir) if os.path.isdir(run_dir) else None
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been saved yet"
        return (
            f"Training stopped at step {self.state.global_step + 1}: the {name} loss is {value}; {kept}. "
            f"Lower the learning rate or the {name} weight, or use fp32, and re-run to resume."
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._term_count:  # a training log: add the mean of each term
            for name, total in self._term_sums.items():
                logs[f"loss_{name}"] = round(total / self._term_count, 6)
            self._term_sums, self._term_count = {}, 0
        super().log(logs, start_time)


def kd_layer_map(kd: KDSettings, provenance: dict | None, n_teacher: int, n_student: int) -> list[int]:
    """The 0-indexed teacher layer for each student layer (see the module doc)."""
    from polydistill.student.layer_maps import resolve_layer_map

    spec = kd.layer_map
    recorded = (provenance or {}).get("teacher_layers")
    if spec == "provenance" and not recorded:
        raise PolydistillError("The student records no teacher_layers in its provenance; pass --layer-map uniform.")
    if spec in (None, "provenance") and recorded and len(recorded) == n_student and max(recorded) < n_teacher:
        return [int(k) for k in recorded]
    if isinstance(spec, list):
        return resolve_layer_map(spec, n_teacher, n_student)
    return resolve_layer_map("alternate-last", n_teacher, n_student)  # k = i·N_T/N_S


def _load_teacher(teacher, data: TaskData, kd: KDSettings):
    source = None
    tokenizer = None
    if isinstance(teacher, str | Path):
        source = Path(teacher)
        teacher = load_model(source)
        tokenizer = load_tokenizer(source)
    task = model_task(teacher)
    if task == "base":
        check_teacher_trained(teacher, source, allow=False)  # a bare encoder cannot give logits
    if task != data.task:
        raise PolydistillError(
            f"The teacher is a {task} classifier but {data.name} is a {data.task} task; use a teacher fine-tuned "
            "on this dataset."
        )
    check_labels(teacher.config, data.label_names, "teacher")
    check_teacher_trained(teacher, source, allow=kd.allow_untrained_teacher)
    teacher.eval()
    teacher.requires_grad_(False)
    teacher.to(_DTYPES[kd.teacher_dtype])
    return teacher, tokenizer, source


def distill(
    teacher,
    student,
    data: TaskData,
    settings: TrainSettings,
    kd: KDSettings | None = None,
    tokenizer=None,
) -> RunResult:
    """Distil ``teacher`` into ``student`` on ``data``; returns the run's result.

    teacher: a fine-tuned model directory or loaded model; student: a directory (e.g. made by
    ``polydistill student``), a loaded model, or a ``BuiltStudent``; tokenizer: the student's, when
    it is not in the student directory. The best student (by dev F1) is saved at
    ``settings.output_dir`` without the projection W."""
    from transformers import set_seed

    set_seed(settings.seed)  # a new head or projection must not depend on what ran before
    kd = kd or KDSettings()
    teacher, teacher_tokenizer, teacher_source = _load_teacher(teacher, data, kd)
    resolved: Resolved = resolve_model(student, data, tokenizer, who="student", default_tokenizer=teacher_tokenizer)
    model = resolved.model
    student_tokenizer = resolved.tokenizer
    if teacher_tokenizer is not None and student_tokenizer is not None:
        check_vocabularies(teacher_tokenizer, student_tokenizer)
    check_embedding_rows(teacher, model)
    if settings.freeze_word_embeddings:
        freeze_word_embeddings(model, resolved.provenance)

    from polydistill.student.adapters import get_adapter

    t_adapter, s_adapter = get_adapter(teacher), get_adapter(model)
    n_teacher, n_student = len(t_adapter.layers(teacher)), len(s_adapter.layers(model))
    layer_map = kd_layer_map(kd, resolved.provenance, n_teacher, n_student)
    if kd.att > 0:
        t_heads, s_heads = t_adapter.num_heads(teacher.config), s_adapter.num_heads(model.config)
        if t_heads != s_heads:
            raise PolydistillError(
                f"The attention loss compares maps head by head, but the teacher has {t_heads} heads and the "
                f"student {s_heads}; build the student with --heads {t_heads} or pass --w-att 0."
            )
        if kd.attention == "scores" and (t_adapter.query_key is None or s_adapter.query_key is None):
            raise PolydistillError(
                "This architecture exposes only post-softmax attention (DeBERTa-v2); use --attention probs."
            )
    t_width, s_width = teacher.config.hidden_size, model.config.hidden_size
    projection = None
    if t_width != s_width and (kd.hid > 0 or kd.emb > 0):
        torch.manual_seed(settings.seed)
        projection = nn.Linear(s_width, t_width)

    def make_trainer(**kwargs):
        return KDTrainer(teacher=teacher, kd=kd, layer_map=layer_map, task=data.task, projection=projection,
                         **kwargs)

    def on_resume(checkpoint: Path) -> None:
        if projection is not None and (checkpoint / PROJECTION_FILE).is_file():
            projection.load_state_dict(torch.load(checkpoint / PROJECTION_FILE, weights_only=True))

    return run_training(
        make_trainer,
        resolved,
        data,
        settings,
        stage="distill",
        record={
            "teacher": str(teacher_source) if teacher_source else None,
            "kd": kd.model_dump(),
            "layer_map": layer_map,
            "projection": [s_width, t_width] if projection is not None else None,
            "provenance": resolved.provenance,
        },
        on_resume=on_resume,
    )

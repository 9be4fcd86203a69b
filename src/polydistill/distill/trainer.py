"""The one ``transformers.Trainer`` subclass of every stage: the training loss is an objective of
registered terms (``distill/terms.py``), each logged separately, and a NaN or inf in any term stops
the run. Fine-tuning is the objective ``{"ce": 1}`` without a teacher; task KD adds the TinyBERT
terms against a frozen teacher; lm-distill the DistilBERT terms.

The teacher is a plain attribute of the trainer, never ``self.model``: it is not wrapped
(DDP/accelerate), not optimised, not saved; it runs in eval mode under ``torch.no_grad``. Only the
mapped layers are captured (see capture.py). A trainable KD module (the width projection W) is a
submodule of the student while training and is applied *inside the student's forward* (a forward
hook maps the captured student hidden states and embeddings to the teacher's width), so DDP / FSDP /
DeepSpeed see, synchronise and checkpoint it with the student; it is detached before the student is
saved as an ordinary HF directory.

Evaluation reports the student's own loss as ``eval_loss`` and the stage's metrics (dev F1), unless
``eval_objective`` is set (lm-distill): then the objective itself is the evaluation loss, with
each term logged as ``eval_loss_<label>``.

Layer map: student layer i (0-indexed) is paired with teacher layer ``layer_map[i]`` (0-indexed),
outputs with outputs (hidden_states[i+1] ↔ hidden_states[layer_map[i]+1]) and attention maps with
attention maps; the embedding outputs (hidden_states[0]) are paired for L_embd.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from transformers import Trainer

from polydistill.architectures import get_adapter
from polydistill.data.tokenize import KD_POSITIONS
from polydistill.data.types import IGNORE_INDEX
from polydistill.distill.capture import LayerCapture
from polydistill.distill.checkpoints import last_complete_checkpoint
from polydistill.distill.settings import KDSettings
from polydistill.distill.teacher_cache import EXAMPLE_INDEX, TeacherCache, cached_or_built
from polydistill.distill.terms import KDTerm, TermInputs, get_term
from polydistill.errors import PolydistillError, TrainingDiverged

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PROJECTION = "kd_projection"  # attribute of the student holding W while it trains


def default_relation_layer(n_teacher: int) -> int:
    """MiniLMv2's choice of teacher layer: the last for base-size teachers (≤ 12 layers), an upper-middle
    one for larger teachers (layer 21 of 24 → 0-indexed 20)."""
    return n_teacher - 1 if n_teacher <= 12 else round(0.875 * n_teacher) - 1


@dataclass(frozen=True)
class ActiveTerm:
    """One weighted term of an objective; ``label`` names it in logs (``loss_<label>``)."""

    label: str
    term: KDTerm
    weight: float


def selection_score(f1: float, loss: float | None) -> float:
    """The best checkpoint's key: dev F1, ties (e.g. F1 0.0 at every evaluation) broken by the lower dev
    loss. Lexicographic (F1, −loss) as one number: tanh keeps the loss part below 1e-6, under any real
    F1 difference on a dev set."""
    return f1 if loss is None else f1 - 1e-6 * math.tanh(max(loss, 0.0))


def objective_of(kd: KDSettings) -> list[ActiveTerm]:
    """The active terms of ``kd``, labelled by their registry names."""
    return [ActiveTerm(name, get_term(name), weight) for name, weight in kd.active.items()]


def attach_projection(student: nn.Module, projection: nn.Module | None) -> None:
    if projection is not None:
        student.add_module(PROJECTION, projection)


def detach_projection(student: nn.Module) -> nn.Module | None:
    """Remove W from the student (before it is saved) and return it."""
    projection = getattr(student, PROJECTION, None)
    if projection is not None:
        delattr(student, PROJECTION)
    return projection


class PolydistillTrainer(Trainer):
    """A Trainer whose loss is ``Σ weight · term`` over ``objective``."""

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean

    def __init__(self, *args, objective: list[ActiveTerm], kd: KDSettings | None = None,
                 teacher: nn.Module | None = None, layer_map: list[int] | None = None,
                 prediction_positions: str = "labels", eval_objective: bool = False,
                 head_parameters: list[nn.Parameter] | None = None, head_lr_multiplier: float = 1.0,
                 teacher_cache: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache_plan = teacher_cache  # {"path", "dtype"}: build/load the teacher-output cache at train start
        self.cache: TeacherCache | None = None
        self.cache_record: dict | None = {k: v for k, v in teacher_cache.items() if k != "path"} \
            if teacher_cache else None
        self.head_parameters = list(head_parameters or [])
        self.head_lr_multiplier = head_lr_multiplier
        if not objective:
            raise PolydistillError("The training objective has no active term; switch at least one on.")
        # not ``self.objective``: Trainer's hyper-parameter search keeps its own objective value there
        self.active_terms = list(objective)
        self.kd = kd or KDSettings()
        self.prediction_positions = prediction_positions  # "labels" (labelled positions) | "tokens" (all real)
        self.eval_objective = eval_objective
        needs: frozenset[str] = frozenset().union(*(a.term.needs for a in self.active_terms))
        self.needs = needs
        student = self.model
        self.teacher: nn.Module | None = None
        self.student_capture: LayerCapture | None = None
        self.teacher_capture: LayerCapture | None = None
        n_student = len(layer_map or [])
        wanted = {"embeddings": "embeddings" in needs, "hidden": "hidden" in needs,
                  "attention": "attention" in needs}
        self.relation_layer: int | None = None
        self.relation_heads: int | None = None
        if any(a.term.needs_teacher for a in self.active_terms):
            if teacher is None:
                raise PolydistillError("The objective has teacher terms but no teacher was given.")
            assert student is not None  # KD trains a given model (no model_init)
            self.teacher = teacher = teacher.to(self.args.device)
            last, qkv = "last_hidden" in needs, "qkv" in needs
            s_extra, t_extra = set(), set()
            if last or qkv:
                s_extra.add(self._n_layers(student) - 1)
            if last:
                t_extra.add(self._n_layers(teacher) - 1)
            if qkv:
                self.relation_layer, self.relation_heads = self._relation_setup(student, teacher, self.kd)
                t_extra.add(self.relation_layer)
            common: dict[str, Any] = {"attention_kind": self.kd.attention, "hidden": wanted["hidden"] or last,
                                      "embeddings": wanted["embeddings"], "attention": wanted["attention"],
                                      "qkv": qkv}
            self.student_capture = LayerCapture(student, sorted(set(range(n_student)) | s_extra), **common)
            self.teacher_capture = LayerCapture(teacher, sorted(set(layer_map or []) | t_extra), **common)
        self._projection_hook = None
        if student is not None and getattr(student, PROJECTION, None) is not None and self.student_capture is not None:
            self._projection_hook = student.register_forward_hook(self._project)
        self._mapped = {"student": list(range(n_student)), "teacher": list(layer_map or [])}
        self._term_sums: dict[str, dict[str, float]] = {"train": {}, "eval": {}}
        self._term_counts = {"train": 0, "eval": 0}

    @staticmethod
    def _n_layers(model: nn.Module) -> int:
        return len(get_adapter(model).layers(model))

    @classmethod
    def _relation_setup(cls, student: nn.Module, teacher: nn.Module, kd: KDSettings) -> tuple[int, int]:
        """(teacher layer, relation heads) of the relation term, checked against both models."""
        n_teacher = cls._n_layers(teacher)
        layer = kd.relation_layer if kd.relation_layer is not None else default_relation_layer(n_teacher)
        if layer >= n_teacher:
            raise PolydistillError(f"--relation-layer {layer} is past the teacher's {n_teacher} layers (0-indexed).")
        t_config, s_config = cast("PreTrainedModel", teacher).config, cast("PreTrainedModel", student).config
        heads = kd.relation_heads or get_adapter(teacher).num_heads(t_config)
        widths = {"teacher": t_config.hidden_size, "student": s_config.hidden_size}
        for who, width in widths.items():
            # Q/K/V outputs are num_heads × head_size wide: the hidden size for every supported family
            if width % heads:
                raise PolydistillError(f"{heads} relation heads do not divide the {who}'s width {width}; pass "
                                       "--relation-heads with a common divisor of both widths.")
        return layer, heads

    def train(self, *args, **kwargs):
        if self.cache_plan and "path" in self.cache_plan and self.cache is None:
            self.cache, info = cached_or_built(
                Path(self.cache_plan["path"]), self._teacher_side, self.train_dataset, self.data_collator,
                self.args.per_device_eval_batch_size, self.cache_plan["dtype"], self.is_world_process_zero())
            self.cache_record = {**(self.cache_record or {}), **info}
        return super().train(*args, **kwargs)

    def release_models(self) -> None:
        """Leave both models as they came: no hooks, their own attention implementation (after the
        last training or evaluation step of the run)."""
        for capture in (self.student_capture, self.teacher_capture):
            if capture is not None:
                capture.remove()
        if self._projection_hook is not None:
            self._projection_hook.remove()
            self._projection_hook = None

    def _project(self, module, inputs, output) -> None:
        """Student forward hook: W maps the captured hidden states and embeddings to the teacher's width."""
        cap = self.student_capture
        if cap is None or not cap._active:
            return
        projection = getattr(module, PROJECTION)
        records = cap.records
        records.hidden = {i: projection(h) for i, h in records.hidden.items()}
        if records.embeddings is not None:
            records.embeddings = projection(records.embeddings)

    # -- a new head's own learning rate -------------------------------------------------------------
    def create_optimizer(self, model=None):
        """The Trainer's AdamW, with a new head's parameters in groups at lr × head_lr_multiplier."""
        fresh = self.optimizer is None
        optimizer = super().create_optimizer(model)
        if fresh and self.head_parameters and self.head_lr_multiplier != 1.0:
            head = {id(p) for p in self.head_parameters}
            for group in list(optimizer.param_groups):
                mine = [p for p in group["params"] if id(p) in head]
                if mine:
                    group["params"] = [p for p in group["params"] if id(p) not in head]
                    optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                               "params": mine, "lr": group["lr"] * self.head_lr_multiplier})
        return optimizer

    # -- the loss -------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # evaluation: the student's own loss (unless the objective is the evaluation loss, lm-distill)
        positions = inputs.pop(KD_POSITIONS, None)  # before the eval path: the model does not take it
        indices = inputs.pop(EXAMPLE_INDEX, None)
        if not model.training and not self.eval_objective:
            # the model's own per-batch mean, as in training: with a token count (global under DDP,
            # ``average_tokens_across_devices``) the Trainer multiplies the loss by the number of processes
            # for a gradient all-reduce that evaluation never does, and eval_loss came out world_size × too big
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch=None)
        labels = inputs["labels"]
        features = {k: v for k, v in inputs.items() if k != "labels"}
        token_mask = features["attention_mask"]
        if self.cache is not None and indices is not None and model.training:
            batch = self.cache.batch(indices, token_mask.shape[1], token_mask.device, torch.float32)
        elif self.teacher is not None:
            batch = self._teacher_side(features, token_mask)
        else:
            batch = {}
        capture = self.student_capture
        if capture is not None:
            with capture.recording():
                s_out = model(**features, output_attentions=capture.needs_output_attentions)
        else:
            s_out = model(**features)
        inputs_for_terms = TermInputs(
            student_logits=s_out.logits, labels=labels, token_mask=token_mask,
            prediction_mask=self._prediction_mask(labels, token_mask, s_out.logits, positions), **batch,
        )
        if capture is not None:
            self._student_side(inputs_for_terms, token_mask, s_out)
        terms = {a.label: a.term.compute(inputs_for_terms, self.kd) for a in self.active_terms}
        for c in (self.student_capture, self.teacher_capture):
            if c is not None:
                c.clear()
        self._check_and_record(terms, "train" if model.training else "eval")
        weights = {a.label: a.weight for a in self.active_terms}
        loss = sum(weights[label] * value for label, value in terms.items())
        return (loss, s_out) if return_outputs else loss

    def _prediction_mask(self, labels, token_mask, logits, positions=None):
        if logits.dim() != 3:
            return None
        if self.prediction_positions == "tokens":
            return token_mask.bool()
        return positions.bool() if positions is not None else labels != IGNORE_INDEX

    def _teacher_side(self, features, token_mask) -> dict:
        cap, teacher = self.teacher_capture, self.teacher
        assert cap is not None and teacher is not None  # only objectives with teacher terms get here
        relation_layer = self.relation_layer
        out: dict = {}
        # the student's forward runs under the run's autocast (accelerate wraps it); the teacher's here
        with torch.no_grad(), self.accelerator.autocast(), cap.recording():
            t_out = teacher(**features, output_attentions=cap.needs_output_attentions)
            out["teacher_logits"] = t_out.logits
            if "attention" in self.needs:
                maps = cap.attention_maps(token_mask, self.kd.attention, t_out.attentions)
                out["teacher_maps"] = self._select(maps, cap.layers, self._mapped["teacher"])
            if "hidden" in self.needs:
                out["teacher_hidden"] = [cap.records.hidden[i] for i in self._mapped["teacher"]]
            if "embeddings" in self.needs:
                out["teacher_embeddings"] = cap.records.embeddings
            if "last_hidden" in self.needs:
                out["teacher_last"] = cap.records.hidden[self._n_layers(teacher) - 1]
            if "qkv" in self.needs:
                assert relation_layer is not None  # set with the qkv captures
                r = cap.records
                out["teacher_qkv"] = [r.query[relation_layer], r.key[relation_layer], r.value[relation_layer]]
        return out

    def _student_side(self, batch: TermInputs, token_mask, s_out) -> None:
        cap, student = self.student_capture, self.model
        assert cap is not None and student is not None  # called when the student is captured
        if "attention" in self.needs:
            maps = cap.attention_maps(token_mask, self.kd.attention, s_out.attentions)
            batch.student_maps = self._select(maps, cap.layers, self._mapped["student"])
        if "hidden" in self.needs:
            batch.student_hidden = [cap.records.hidden[i] for i in self._mapped["student"]]
        if "embeddings" in self.needs:
            batch.student_embeddings = cap.records.embeddings
        last = self._n_layers(student) - 1
        if "last_hidden" in self.needs:
            batch.student_last = cap.records.hidden[last]
        if "qkv" in self.needs:
            r = cap.records
            batch.student_qkv = [r.query[last], r.key[last], r.value[last]]
            batch.relation_heads = self.relation_heads

    @staticmethod
    def _select(maps: list, captured: list[int], wanted: list[int]) -> list:
        by_layer = dict(zip(captured, maps, strict=True))
        return [by_layer[i] for i in wanted]

    # -- NaN stop and per-term logging -----------------------------------------------------------
    def _check_and_record(self, terms: Mapping[str, torch.Tensor], phase: str) -> None:
        values = torch.stack([v.detach().float() for v in terms.values()]).tolist()
        sums = self._term_sums[phase]
        for name, value in zip(terms, values, strict=True):
            if not math.isfinite(value):
                raise TrainingDiverged(self._nan_message(name, value))
            sums[name] = sums.get(name, 0.0) + value
        self._term_counts[phase] += 1

    def _nan_message(self, name: str, value: float) -> str:
        run_dir = self.args.output_dir
        last = last_complete_checkpoint(run_dir, prune=False) if run_dir and os.path.isdir(run_dir) else None
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint had been saved yet"
        return (
            f"Training stopped at step {self.state.global_step + 1}: the {name} loss is {value}; {kept}. "
            f"Lower the learning rate or the {name} weight, or use fp32, and re-run (changed settings start "
            "afresh; the same command resumes from the last good checkpoint)."
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        phase = "eval" if any(k.startswith("eval_") for k in logs) else "train" if "loss" in logs else None
        if phase and self._term_counts[phase]:  # add the mean of each term since the last log
            prefix = "eval_" if phase == "eval" else ""
            means = self._mean_over_processes(self._term_sums[phase], self._term_counts[phase])
            for name, mean in means.items():
                logs[f"{prefix}loss_{name}"] = round(mean, 6)
            self._term_sums[phase], self._term_counts[phase] = {}, 0
        super().log(logs, start_time)

    def _mean_over_processes(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """Per-term means over every process's batches since the last log (one number per term)."""
        names = sorted(sums)
        totals = torch.tensor([sums[n] for n in names] + [float(count)], dtype=torch.float64,
                              device=self.args.device)
        if self.args.world_size > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        return {name: float(totals[i] / totals[-1]) for i, name in enumerate(names)}

    # -- best checkpoint: dev F1, ties broken by dev loss -------------------------------------------
    def evaluate(self, *args, **kwargs):
        metrics = super().evaluate(*args, **kwargs)
        if metrics.get("eval_f1") is not None:
            metrics["eval_selection"] = selection_score(metrics["eval_f1"], metrics.get("eval_loss"))
        return metrics

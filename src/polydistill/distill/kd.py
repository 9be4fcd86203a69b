"""TinyBERT-style task distillation (Wibowo et al. 2024, §2.1): a frozen, fine-tuned teacher, a student (usually a
weight copy of it) and the KD objective of ``KDSettings`` run through the training core.

loss = Σ weight · term over the active registered terms (default w_att·L_att + w_hid·L_hid +
w_emb·L_embd + w_pred·L_pred + w_ce·CE), each logged separately (``loss_att``, ... in the Trainer log
history, ``log.jsonl`` and TensorBoard).

Layer map default: the student's provenance ``teacher_layers`` (each student layer is distilled
towards the teacher layer it was copied from), else TinyBERT's k = i·N_T/N_S (1-indexed), i.e.
0-indexed k = (i+1)·N_T/N_S − 1. The two agree for the paper's students (alternate-last copy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from polydistill.architectures import get_adapter, task_of
from polydistill.data.types import TaskData
from polydistill.distill.checks import (
    check_embedding_rows,
    check_labels,
    check_teacher_trained,
    check_vocabularies,
)
from polydistill.distill.precision import resolve_precision
from polydistill.distill.run import RunResult, model_digest
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.distill.task import freeze_word_embeddings, resolve_model, train_task
from polydistill.distill.teacher_cache import (
    cache_key,
    default_cache_root,
    describe,
    estimate_bytes,
    over_budget,
)
from polydistill.distill.trainer import attach_projection, objective_of
from polydistill.errors import PolydistillError, require_types
from polydistill.evaluate.evaluate import RunFileSummary
from polydistill.evaluate.gate import weak_teacher_reason
from polydistill.io import RUN_FILE, read_record
from polydistill.modeling import load_model, load_tokenizer, resolve_model_dir
from polydistill.ranks import is_main_process
from polydistill.student.layer_maps import resolve_layer_map
from polydistill.student.provenance import Provenance

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# checks and caching, not the objective: they never block a resume
KD_PERMISSIONS = {"allow_untrained_teacher", "allow_weak_teacher", "teacher_margin", "teacher_cache",
                  "teacher_cache_gb", "teacher_cache_dtype"}


def cache_spec(kd: KDSettings, teacher_config, layer_map: list[int], token_task: bool) -> dict:
    """What the teacher-output cache stores per example for ``kd``'s active terms (its key and its size,
    :func:`polydistill.distill.teacher_cache.estimate_bytes`): from the teacher's config, so that compress' plan
    can size the cache before any model is built."""
    return {"width": teacher_config.hidden_size, "heads": get_adapter(teacher_config).num_heads(teacher_config),
            "num_labels": teacher_config.num_labels, "token_logits": token_task,
            "hidden_layers": len(layer_map) if kd.weight("hid") > 0 else 0,
            "map_layers": len(layer_map) if kd.weight("att") > 0 else 0,
            "embeddings": int(kd.weight("emb") > 0), "last_hidden": int(kd.weight("cos") + kd.weight("last_mse") > 0),
            "relation": int(kd.weight("rel") > 0), "relation_layer": kd.relation_layer,
            "relation_heads": kd.relation_heads, "layer_map": layer_map,
            "attention": kd.attention, "terms": sorted(kd.active)}


def warn_cache_skipped(record: dict) -> None:
    """The one warning line of a skipped cache (main process, stderr): every KD step then runs the teacher."""
    if is_main_process():
        print(f"warning: {describe(record)}; every KD step runs the teacher (slower; a larger --teacher-cache-gb "
              "builds it).", file=sys.stderr, flush=True)


def _cache_plan(kd: KDSettings, teacher, teacher_digest: str, layer_map: list[int], data: TaskData,
                settings: TrainSettings, tokenizer):
    """A function of the tokenised training split → the trainer's teacher-cache settings (``{"path", "dtype",
    "bytes"}``), or the record of why the cache is skipped (``{"skipped": why, ...}``: left padding, or over
    ``teacher_cache_gb`` by :func:`~polydistill.distill.teacher_cache.over_budget`, with a warning); None when
    the cache is off. The trainer records either in the run's ``teacher_cache``."""
    if not kd.teacher_cache:
        return None
    if getattr(tokenizer, "padding_side", "right") != "right":
        return lambda train_split: {"skipped": "the tokenizer pads on the left (the cache needs right padding)"}
    spec = cache_spec(kd, teacher.config, layer_map, data.task == "token")

    def plan(train_split):
        ids = train_split["input_ids"]
        needed = estimate_bytes((len(x) for x in ids), spec, kd.teacher_cache_dtype)
        skipped = over_budget(needed, kd.teacher_cache_gb)
        if skipped is not None:
            warn_cache_skipped(skipped)
            return skipped
        key = cache_key(teacher_digest, ids, spec, kd.teacher_cache_dtype, resolve_precision(settings.precision).name)
        return {"path": default_cache_root() / key, "dtype": kd.teacher_cache_dtype, "bytes": needed}

    return plan


def check_teacher_learned(source: str | Path | None, data: TaskData, kd: KDSettings) -> None:
    """The teacher gate (evaluate/gate.py) for a teacher (directory or hub id) with a fine-tuning record."""
    if kd.allow_weak_teacher or source is None or not (resolve_model_dir(source) / RUN_FILE).is_file():
        return
    record = read_record(resolve_model_dir(source) / RUN_FILE, RunFileSummary)
    if (record.get("data") or {}).get("name") != data.name:
        return  # fine-tuned on other data: its dev F1 says nothing about this dataset
    reason = weak_teacher_reason((record.get("result") or {}).get("best_dev_f1"), data, kd.teacher_margin)
    if reason:
        raise PolydistillError(f"The teacher {source} is too weak to distil from: {reason}; or pass "
                               "--allow-weak-teacher.")


def kd_layer_map(kd: KDSettings, provenance: Provenance | None, n_teacher: int, n_student: int) -> list[int]:
    """The 0-indexed teacher layer for each student layer (see the module doc)."""
    spec = kd.layer_map
    recorded = provenance.teacher_layers if provenance is not None else None
    if spec == "provenance" and not recorded:
        raise PolydistillError("The student records no teacher_layers in its provenance; pass --kd-layer-map uniform.")
    if spec in (None, "provenance") and recorded and len(recorded) == n_student and max(recorded) < n_teacher:
        return [int(k) for k in recorded]
    if isinstance(spec, list):
        return resolve_layer_map(spec, n_teacher, n_student)
    return resolve_layer_map("alternate-last", n_teacher, n_student)  # k = i·N_T/N_S


def load_teacher(teacher, data: TaskData, kd: KDSettings):
    """The frozen teacher (eval mode, no gradients), its tokenizer and source, after the hygiene checks."""
    source = directory = None
    tokenizer = None
    if isinstance(teacher, str | Path):
        source, directory = teacher, resolve_model_dir(teacher)  # a directory or a hub id, as given
        tokenizer = load_tokenizer(source)
        teacher = load_model(source)
    task = task_of(teacher)
    if task == "base":
        check_teacher_trained(teacher, directory, allow=False)  # a bare encoder cannot give logits
    if task != data.task:
        raise PolydistillError(
            f"The teacher is a {task} classifier but {data.name} is a {data.task} task; use a teacher fine-tuned "
            "on this dataset."
        )
    check_labels(teacher.config, data.label_names, "teacher")
    check_teacher_trained(teacher, directory, allow=kd.allow_untrained_teacher)
    teacher.eval()
    teacher.requires_grad_(False)
    teacher.to(_DTYPES[kd.teacher_dtype])
    return teacher, tokenizer, source


def _check_attention_terms(kd: KDSettings, teacher, student) -> None:
    if kd.weight("att") <= 0:
        return
    t_adapter, s_adapter = get_adapter(teacher), get_adapter(student)
    t_heads, s_heads = t_adapter.num_heads(teacher.config), s_adapter.num_heads(student.config)
    if t_heads != s_heads:
        raise PolydistillError(
            f"The attention loss compares maps head by head, but the teacher has {t_heads} heads and the "
            f"student {s_heads}; build the student with --heads {t_heads} or pass --w-att 0."
        )
    if kd.attention == "scores" and (t_adapter.query_key is None or s_adapter.query_key is None):
        raise PolydistillError(
            "This architecture exposes only post-softmax attention (DeBERTa-v2); use --attention probs."
        )


def distill(
    teacher,
    student,
    data: TaskData,
    settings: TrainSettings,
    kd: KDSettings | None = None,
    tokenizer=None,
    callbacks=(),
    unlabelled=None,
) -> RunResult:
    """Distil ``teacher`` into ``student`` on ``data``; returns the run's result.

    teacher: a fine-tuned model directory or loaded model; student: a directory (e.g. made by
    ``polydistill student``), a loaded model, or a ``BuiltStudent``; tokenizer: the student's, when
    it is not in the student directory. ``unlabelled``: inputs without labels (``data.unlabelled``)
    that add teacher-labelled examples: they count in the teacher-matching terms only. The best
    student (by dev F1) is saved at ``settings.output_dir`` without the projection W."""
    from transformers import set_seed

    require_types(data=(data, TaskData, "a TaskData (polydistill.data.load_task_data)"),
                  settings=(settings, TrainSettings, "a TrainSettings (polydistill.distill.settings)"),
                  kd=(kd, (KDSettings, type(None)), "a KDSettings (polydistill.distill.settings) or None"))
    set_seed(settings.seed)  # a new head or projection must not depend on what ran before
    kd = kd or KDSettings()
    check_teacher_learned(teacher if isinstance(teacher, str | Path) else None, data, kd)  # before loading
    teacher, teacher_tokenizer, teacher_source = load_teacher(teacher, data, kd)
    resolved = resolve_model(student, data, tokenizer, who="student", default_tokenizer=teacher_tokenizer)
    model = resolved.model
    if teacher_tokenizer is not None and resolved.tokenizer is not None:
        check_vocabularies(teacher_tokenizer, resolved.tokenizer)
    check_embedding_rows(teacher, model)
    if settings.freeze_word_embeddings:
        freeze_word_embeddings(model, resolved.provenance)

    n_teacher = len(get_adapter(teacher).layers(teacher))
    n_student = len(get_adapter(model).layers(model))
    layer_map = kd_layer_map(kd, resolved.provenance, n_teacher, n_student)
    _check_attention_terms(kd, teacher, model)
    t_width, s_width = teacher.config.hidden_size, model.config.hidden_size
    projection = None
    if t_width != s_width and (kd.weight("hid") > 0 or kd.weight("emb") > 0):
        torch.manual_seed(settings.seed)
        projection = nn.Linear(s_width, t_width).to(next(model.parameters()).dtype)
        attach_projection(model, projection)  # trained (and synchronised under DDP) with the student

    teacher_digest = model_digest(teacher)
    return train_task(
        "distill", resolved, data, settings, objective_of(kd),
        teacher_cache=_cache_plan(kd, teacher, teacher_digest, layer_map, data, settings, resolved.tokenizer),
        callbacks=callbacks, unlabelled=unlabelled,
        # DDP looks for used parameters from the forward's outputs and would mark W (whose outputs feed
        # only the loss) unused, then see its gradient arrive: with W every parameter is used anyway
        argument_overrides={"ddp_find_unused_parameters": False} if projection is not None else None,
        identity={"teacher": teacher_digest, "layer_map": layer_map,
                  "kd": kd.model_dump(mode="json", exclude=KD_PERMISSIONS)},
        trainer_kwargs={"teacher": teacher, "kd": kd, "layer_map": layer_map},
        record={
            "teacher": str(teacher_source) if teacher_source else None,
            "kd": kd.model_dump(mode="json"),
            "layer_map": layer_map,
            "projection": [s_width, t_width] if projection is not None else None,
            "provenance": resolved.provenance.to_json() if resolved.provenance is not None else None,
        },
    )

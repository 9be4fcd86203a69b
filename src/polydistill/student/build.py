"""Build a student from a teacher by weight copy: depth (layer map) and width (index selection).

``build_student`` is the library entry point behind ``polydistill student``. It checks every input
before loading weights, builds the student from the teacher's config with the student's sizes
(seeded, so fresh parts are reproducible), copies tensors per ``init``, and writes an ordinary
Hugging Face model directory plus ``polydistill.json`` and a README model card, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from polydistill.architectures import ArchitectureAdapter, Task, count_parameters, get_adapter, task_of
from polydistill.errors import PolydistillError, require, require_types
from polydistill.io import check_output_dir, package_versions
from polydistill.student.layer_maps import LAYER_MAPS, explicit_length, resolve_layer_map
from polydistill.student.model_dir import save_model_dir
from polydistill.student.provenance import STUDENT_RECORD_VERSION, Provenance
from polydistill.student.selection import WidthPlan, uniform_plan

INITS = ("from-teacher", "from-base", "from-scratch")
WIDTH_SELECTIONS = ("uniform", "importance")


@dataclass
class BuiltStudent:
    model: Any  # a transformers PreTrainedModel, in eval mode
    tokenizer: Any  # the teacher's tokenizer (None if the teacher was given as a model without one)
    provenance: Provenance
    path: Path | None  # the written model directory, if ``out`` was given


def _teacher_config(teacher):
    """(config, name) of a path / hub id or an already-loaded model, without loading weights."""
    from polydistill.modeling import load_config

    if isinstance(teacher, (str, Path)):
        return load_config(teacher), str(teacher)
    require(hasattr(teacher, "config") and hasattr(teacher, "state_dict"),
            f"The teacher must be a model directory, a hub id or a loaded model, not {type(teacher).__name__}.")
    return teacher.config, getattr(teacher.config, "_name_or_path", "") or type(teacher).__name__


def _load_teacher_weights(teacher, config):
    """The teacher model from a path / hub id (or as given when already loaded)."""
    from polydistill.modeling import load_model

    if not isinstance(teacher, (str, Path)):
        return teacher
    return load_model(teacher, config=config)


def _base_config(base, teacher_config):
    """(config, name) of the base model, after checking its shape and vocabulary size match the teacher's."""
    from polydistill.modeling import load_config

    if isinstance(base, (str, Path)):
        config, name = load_config(base), str(base)
    else:
        config, name = base.config, getattr(base.config, "_name_or_path", "") or type(base).__name__
    require(config.model_type == teacher_config.model_type,
            f"The base model {name} has architecture {config.model_type!r} but the teacher has "
            f"{teacher_config.model_type!r}; pass the checkpoint the teacher was fine-tuned from.")
    for field in ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads"):
        require(getattr(config, field) == getattr(teacher_config, field),
                f"The base model {name} has {field}={getattr(config, field)} but the teacher has "
                f"{getattr(teacher_config, field)}; pass the checkpoint the teacher was fine-tuned from.")
    require(config.vocab_size == teacher_config.vocab_size,
            f"The base model {name} has a vocabulary of {config.vocab_size} but the teacher's has "
            f"{teacher_config.vocab_size}; the base must share the teacher's tokenizer.")
    return config, name


def _check_base_tokenizer(base, name, teacher_tokenizer) -> None:
    """Refuse a base whose tokenizer (if it has one) is not the teacher's."""
    from polydistill.modeling import load_tokenizer, vocabularies_match

    if not isinstance(base, (str, Path)) or teacher_tokenizer is None:
        return
    has_tokenizer = Path(base).is_dir() and any(Path(base).glob("tokenizer*"))
    try:
        base_tokenizer = load_tokenizer(base)
    except PolydistillError:
        if has_tokenizer:  # a tokenizer that does not fit the base's own rows: certainly not the teacher's
            raise PolydistillError(f"The base model {name} uses another vocabulary than the teacher (its tokenizer "
                                   "does not fit its embedding rows); the base must share the teacher's "
                                   "tokenizer.") from None
        return  # a weights-only base: the vocabulary size check has to do
    require(vocabularies_match(base_tokenizer, teacher_tokenizer),
            f"The base model {name} uses another vocabulary than the teacher; the base must share the "
            "teacher's tokenizer.")


def _check_width_fits(adapter: ArchitectureAdapter, config, plan: WidthPlan) -> None:
    """Width changes the supported architectures' configs cannot express."""
    if plan.is_identity(config):
        return
    require(adapter.head_size(config) == config.hidden_size // config.num_attention_heads,
            "The teacher sets its own attention_head_size; width reduction needs head size = hidden / heads.")
    embedding_size = adapter.embedding_size(config)
    require(embedding_size == config.hidden_size or plan.hidden_size != embedding_size,
            f"A hidden size of {plan.hidden_size} equals the teacher's embedding size, which removes the "
            "embedding projection the copy needs; choose another --hidden.")
    require(getattr(config, "conv_groups", 1) == 1 or plan.hidden_size == config.hidden_size,
            "The teacher's convolution layer uses groups > 1, which cannot be narrowed; keep the hidden size.")


def _sizes(config) -> dict[str, int]:
    heads = config.num_attention_heads
    return {"num_layers": config.num_hidden_layers, "hidden_size": config.hidden_size,
            "intermediate_size": config.intermediate_size, "num_heads": heads,
            "head_size": config.hidden_size // heads}


def _check_arguments(*, init: str, base, width_select: str, sizes: dict[str, int | None], seed: int,
                     overwrite: bool, layer_map, out) -> None:
    """Refuse an argument of the wrong kind or value (none is read or loaded yet)."""
    require(init in INITS, f"Unknown init {init!r}; choose one of {', '.join(INITS)}.")
    require(init != "from-base" or base is not None,
            "--init from-base needs --base, the pretrained checkpoint the teacher was fine-tuned from.")
    require(width_select in WIDTH_SELECTIONS,
            f"Unknown width selection {width_select!r}; choose one of {', '.join(WIDTH_SELECTIONS)}.")
    for name, value in sizes.items():
        require(value is None or (isinstance(value, int) and not isinstance(value, bool)),
                f"{name} must be a whole number, got {value!r}.")
    require_types(seed=(seed, int, "a whole number"), overwrite=(overwrite, bool, "True or False"),
                  layer_map=(layer_map, (str, list, tuple), "a map name such as alternate-last, \"0,2,5\" or a list "
                             "of teacher layers"),
                  out=(out, (str, os.PathLike, type(None)), "a folder path or None"))


def _fresh_student(adapter: ArchitectureAdapter, teacher_model, task: Task, n_layers: int, plan: WidthPlan, seed: int):
    """The student model at its sizes, with fresh weights seeded by ``seed`` (nothing copied yet)."""
    import torch

    from polydistill.modeling import auto_class

    config = adapter.student_config(teacher_model.config, n_layers, plan.hidden_size, plan.intermediate_size,
                                    plan.num_heads)
    config.architectures = [type(teacher_model).__name__]
    if hasattr(config, "auto_map"):  # the student is built from our code, never the teacher's custom code
        del config.auto_map
    torch.manual_seed(seed)  # fresh parts (all of from-scratch, the head of from-base) are reproducible
    return auto_class(task).from_config(config)


def _copy_init(init: str, teacher_model, base_model, student, adapter: ArchitectureAdapter, plan: WidthPlan,
               mapped: list[int]) -> list[str]:
    """Copy ``init``'s tensors into ``student``; the parts copied, as provenance names them."""
    from polydistill.student.weights import copy_weights

    if init == "from-teacher":
        copy_weights(teacher_model, student, adapter, plan, mapped, teacher_model.config, include_head=True)
        return ["embeddings", "layers", "head"]
    if init == "from-base":
        assert base_model is not None  # loaded for from-base
        copy_weights(adapter.backbone(base_model), adapter.backbone(student), adapter, plan, mapped,
                     base_model.config, include_head=False)
        return ["embeddings", "layers"]
    return []


def _layer_map_name(layer_map: str | Sequence[int], teacher_layers: Sequence[int] | None) -> str:
    """The layer map's name provenance records: a named map, the caller's name for layers chosen elsewhere
    (``teacher_layers=``, e.g. importance), else ``explicit``."""
    if not isinstance(layer_map, str) or explicit_length(layer_map) is not None:
        return "explicit"
    if teacher_layers is not None and layer_map in LAYER_MAPS:  # the layers are not the named map's
        return "explicit"
    return layer_map


def build_student(
    teacher,
    out: str | Path | None = None,
    *,
    layers: int | None = None,
    layer_map: str | Sequence[int] = "alternate-last",
    hidden: int | None = None,
    intermediate: int | None = None,
    heads: int | None = None,
    init: str = "from-teacher",
    base=None,
    seed: int = 0,
    overwrite: bool = False,
    width_plan: WidthPlan | None = None,
    teacher_layers: Sequence[int] | None = None,
    width_select: str = "uniform",
    calibration=None,
    tokenizer=None,
) -> BuiltStudent:
    """Build (and, with ``out``, save) a student of ``teacher``.

    teacher: model directory, hub id or loaded model (sequence / token classification or bare encoder).
    layers: student depth (default: the teacher's, or the length of an explicit map).
    layer_map: alternate-last | alternate-first | first | last | explicit 0-indexed list or "0,2,5".
    teacher_layers: explicit 0-indexed teacher layers (overrides ``layer_map``).
    hidden / intermediate / heads: student widths (default: the teacher's), uniform selection unless
    ``width_plan`` (e.g. importance-based, per-layer sets) or ``width_select="importance"`` with
    ``calibration`` (a :class:`~polydistill.student.importance.CalibrationSet` or a list of batches) is given.
    init: from-teacher (copy embeddings, layers, head) | from-base (copy from ``base``, fresh head) |
    from-scratch (nothing copied; standard init seeded by ``seed``).
    """
    from polydistill.modeling import load_model, load_tokenizer

    _check_arguments(init=init, base=base, width_select=width_select,
                     sizes={"layers": layers, "hidden": hidden, "intermediate": intermediate, "heads": heads},
                     seed=seed, overwrite=overwrite, layer_map=layer_map, out=out)
    if out is not None:
        check_output_dir(out, overwrite, inputs=(teacher, base))  # refuse before any slow loading

    # Everything that can be checked from the config is checked before the weights are loaded.
    t_config, teacher_name = _teacher_config(teacher)
    adapter = get_adapter(t_config)
    n_teacher = t_config.num_hidden_layers
    spec = list(teacher_layers) if teacher_layers is not None else layer_map
    n_student = layers if layers is not None else (explicit_length(spec) or n_teacher)
    mapped = resolve_layer_map(spec, n_teacher, int(n_student))
    if width_plan is None and width_select == "uniform":
        width_plan = uniform_plan(t_config, hidden, intermediate, heads, n_layers=len(mapped))
    base_config, base_name = _base_config(base, t_config) if init == "from-base" else (None, None)

    if tokenizer is None and isinstance(teacher, (str, Path)):
        tokenizer = load_tokenizer(teacher)
    if init == "from-base":
        _check_base_tokenizer(base, base_name, tokenizer)
    teacher_model = _load_teacher_weights(teacher, t_config)
    t_config = teacher_model.config
    if width_plan is None:  # importance selection needs the loaded teacher
        from polydistill.student.importance import importance_plan

        width_plan = importance_plan(teacher_model, hidden=hidden, intermediate=intermediate, heads=heads,
                                     teacher_layers=mapped, seed=seed, calibration=calibration)
    plan = width_plan
    plan.validate(t_config, len(mapped))
    _check_width_fits(adapter, t_config, plan)

    base_model = None
    if init == "from-base":
        base_model = base if not isinstance(base, (str, Path)) else load_model(base, task="base", config=base_config)

    task = task_of(teacher_model)
    student = _fresh_student(adapter, teacher_model, task, len(mapped), plan, seed)
    copied = _copy_init(init, teacher_model, base_model, student, adapter, plan, mapped)
    student = student.to(next(teacher_model.parameters()).dtype).eval()  # keep the teacher's precision

    labels = [t_config.id2label[i] for i in sorted(t_config.id2label)] if task != "base" else []
    provenance = Provenance(
        polydistill_student=STUDENT_RECORD_VERSION,
        teacher=teacher_name,
        teacher_architecture=type(teacher_model).__name__,
        architecture=adapter.name,
        model_type=t_config.model_type,
        task=task,
        base=base_name,
        init=init,
        copied=copied,
        layer_map=_layer_map_name(layer_map, teacher_layers),
        teacher_layers=mapped,
        num_layers=len(mapped),
        width=plan.to_dict(with_indices=plan.method != "uniform"),
        teacher_sizes=_sizes(t_config),
        labels=labels,
        seed=seed,
        parameters=count_parameters(student).total,
        teacher_parameters=count_parameters(teacher_model).total,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        versions=package_versions(),
    )

    path = None
    if out is not None:
        # one writer per output; taking the lock also removes the temporaries a killed build left
        with save_model_dir(out, "student", model=student, tokenizer=tokenizer, provenance=provenance,
                            overwrite=overwrite, lock=True) as target:
            if isinstance(teacher, str | os.PathLike):  # sentence-transformers' pipeline, at the student's width
                from polydistill.modeling import resolve_model_dir
                from polydistill.student.usage import copy_usage_files

                copy_usage_files(resolve_model_dir(teacher), target.path,
                                 hidden=None if plan.hidden_size == t_config.hidden_size else plan.hidden_size)
        path = Path(out)
    return BuiltStudent(model=student, tokenizer=tokenizer, provenance=provenance, path=path)

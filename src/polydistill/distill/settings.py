"""The settings of a training run, validated with pydantic: the one source of truth for every
hyper-parameter. The CLI derives its flags from these fields (``cli/options.py``) and the grid
schema embeds these models (``experiments/schema.py``), so a bound or a default lives here only.

- :class:`Training`: hyper-parameters of one run (what a grid's ``teacher_training`` /
  ``student_training`` and the CLI's training flags set).
- :class:`TrainSettings`: a ``Training`` plus where and how this run writes (output, seed, resume).
- :class:`KDSettings`: the KD objective: ``{term: weight}`` over the KD-term registry
  (``distill/terms.py``) plus the terms' options. A weight of 0 switches its term off: it is neither
  computed nor captured. Default = the TinyBERT objective of Wibowo et al. 2024, §2.1:
  w_att·L_att + w_hid·L_hid + w_emb·L_embd + w_pred·L_pred + w_ce·CE, every weight 1.
- :class:`LMDistillSettings`: lm-distill's settings (``distill/lm_distill.py``): the training settings with
  Singh et al. 2023's defaults plus the triplet loss.

Light (pydantic only), so the CLI builds its flags without importing torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from polydistill.errors import PolydistillError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
MAX_SEED = 2**32 - 1  # numpy's and torch's seeding accept 0 … 2**32 - 1
HeadInit = Literal["probe", "random"]
# Fields that say where a run writes or how it shows progress, not what it computes: they do not
# enter the run's fingerprint, so changing them never blocks a resume.
RUN_ONLY_FIELDS = frozenset({"output_dir", "resume", "overwrite", "progress", "save_total_limit", "keep_checkpoints",
                             "cache_dir", "logging_steps", "allow_weak_teacher", "report_to", "push_to_hub",
                             "teacher_head_dir"})
# Experiment trackers a run can log to: transformers' own integrations, each with the package it needs.
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}
M = TypeVar("M", bound=BaseModel)


def with_defaults(base: type[M], name: str, **defaults: Any) -> type[M]:
    """A subclass of ``base`` whose fields have other defaults and keep their bounds and help: how a
    stage or the grid states its own defaults once, as overrides of the one definition here. (A type
    checker cannot see a class made at run time: modules define it for type checkers as ``base`` itself,
    under ``if TYPE_CHECKING``.)"""
    from pydantic import create_model
    from pydantic.fields import FieldInfo

    fields: dict[str, Any] = {}
    for field, default in defaults.items():
        info = base.model_fields[field]
        fields[field] = (info.annotation, FieldInfo.merge_field_infos(info, default=default))
    return create_model(name, __base__=base, __doc__=f"{base.__doc__}\n\nDefaults here: {defaults}.", **fields)


def cli(*flags: str, **extra: Any) -> dict[str, Any]:
    """Field metadata naming the command-line flags of a setting (first = main name, rest = aliases)."""
    return {"cli": list(flags), **extra}


class Training(BaseModel):
    """How to train (Wibowo et al. 2024, §3: AdamW with the library defaults, evaluation every N steps, best
    checkpoint by dev F1). Defaults suit a single CLI run; a grid overrides some of them once
    (``experiments/schema.py``)."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(3.0, gt=0, allow_inf_nan=False, description="Training epochs (a fraction is allowed).")
    learning_rate: float = Field(5e-5, gt=0, allow_inf_nan=False, json_schema_extra=cli("--lr", "--learning-rate"),
                                 description="AdamW learning rate (other AdamW settings: library defaults).")
    batch_size: int = Field(32, ge=1, description="Training examples per device and step.")
    eval_batch_size: int | None = Field(None, ge=1, description="Evaluation batch size (default: --batch-size).")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate and checkpoint every N steps (default: each epoch).")
    max_length: int = Field(128, ge=8, description="Maximum tokens per example.")
    max_steps: int | None = Field(None, ge=1, description="Stop after N optimiser steps (overrides --epochs).")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Fraction of the steps with a linear learning-rate warm-up.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    freeze_word_embeddings: bool = Field(False, description="Freeze the word-embedding table (never for from-scratch).")
    precision: Precision = Field("fp32", description="auto (bf16 where the CPU or GPU supports it) | fp32 | bf16 | fp16.")
    group_by_length: bool = Field(False, description="Batch examples of similar length (less padding).")
    head_init: HeadInit = Field("probe", description="A new task head: probe (fit it as a logistic regression on the "
                                "frozen features first, LP-FT) | random.")
    head_lr_multiplier: float = Field(1.0, gt=0, allow_inf_nan=False,
                                      description="A new task head trains at --lr times this.")
    early_stopping_patience: int | None = Field(None, ge=1, json_schema_extra=cli("--early-stopping"),
                                                description="Stop after N evaluations without dev-F1 gain.")
    logging_steps: int = Field(50, ge=1, description="Log the loss terms every N steps.")

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        """``fp16: true`` / ``bf16: true`` mean ``precision``; ``max_steps: -1`` means no step limit."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fp16, bf16 = bool(data.pop("fp16", False)), bool(data.pop("bf16", False))
        if fp16 and bf16:
            raise ValueError("choose at most one of fp16 and bf16")
        if fp16 or bf16:
            alias = "fp16" if fp16 else "bf16"
            if data.get("precision") not in (None, alias):  # given explicitly, and not what the alias says
                raise ValueError(f"precision {data['precision']} contradicts {alias}: true; give one of them")
            data["precision"] = alias
        if data.get("max_steps") == -1:
            data["max_steps"] = None
        return data


class TrainSettings(Training):
    """A ``Training`` plus this run's output and bookkeeping. ``output_dir`` receives the best model
    as an ordinary HF directory; checkpoints live in ``<output_dir>.work/`` until the run finishes."""

    output_dir: Path = Field(json_schema_extra=cli("--out", "-o"), description="Output directory for the best model.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the run (new heads, data order, dropout).")
    resume: bool = Field(True, description="Resume from the last checkpoint in <out>.work/ if any.")
    overwrite: bool = Field(False, description="Replace an existing output (and discard checkpoints of another run).")
    progress: bool = True  # the Trainer's progress bar (grids and the demo show their own)
    save_total_limit: int = Field(2, ge=1)
    keep_checkpoints: bool = Field(False, description="keep <output_dir>.work/ after a successful run")
    cache_dir: Path | None = Field(None, description="tokenised-data cache (data layer)")
    report_to: str = Field("none", description="Experiment trackers: none | tensorboard | wandb | mlflow | trackio, "
                           "or a comma list (transformers' integrations; tensorboard writes into the run's "
                           "tensorboard/ folder; each needs its package). Every term is in log.jsonl anyway.")

    push_to_hub: str | None = Field(None, description="Upload the finished model directory to this Hub repository "
                                    "(OWNER/NAME; token from HF_TOKEN or `hf auth login`).")

    @field_validator("push_to_hub")
    @classmethod
    def _repo_id(cls, value: str | None) -> str | None:
        from polydistill.hub import check_repo_id

        try:
            if value is not None:
                check_repo_id(value)
        except PolydistillError as err:
            raise ValueError(str(err).rstrip(".")) from None
        return value

    @field_validator("report_to")
    @classmethod
    def _trackers(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()] or ["none"]
        unknown = [name for name in names if name not in (*TRACKERS, "none")]
        if unknown:
            raise ValueError(f"unknown tracker {unknown[0]!r}; choose none, {', '.join(TRACKERS)} or a comma list")
        if "none" in names and len(names) > 1:
            raise ValueError("'none' cannot be combined with a tracker")
        return ",".join(names)

    @property
    def trackers(self) -> list[str]:
        return [name for name in self.report_to.split(",") if name != "none"]

    @property
    def work_dir(self) -> Path:
        return self.output_dir.with_name(self.output_dir.name + ".work")

    def identity(self) -> dict[str, Any]:
        """What decides this run's numbers (the fingerprint's settings part)."""
        return self.model_dump(mode="json", exclude=set(RUN_ONLY_FIELDS))


TINYBERT_WEIGHTS = {"att": 1.0, "hid": 1.0, "emb": 1.0, "pred": 1.0, "ce": 1.0}


class KDSettings(BaseModel):
    """The KD objective. Weights: ``weights={"att": 1, ...}`` or, as shorthand, one keyword per
    registered term (``KDSettings(att=0, hid=2)``); unnamed TinyBERT terms keep weight 1.

    ``pred_loss``: ``mse`` (the paper's L_pred) or ``kl`` (Hinton: KL at temperature T, ×T²).
    ``attention``: ``probs`` (default) compares post-softmax attention probabilities, what Hugging
    Face returns and what the paper's equations describe; ``scores`` compares pre-softmax scores
    QK^T/sqrt(d), as TinyBERT's released code does.
    ``layer_map``: None → the student's provenance ``teacher_layers`` when recorded, else TinyBERT's
    k = i·N_T/N_S; ``"uniform"`` forces k = i·N_T/N_S; a list gives 0-indexed teacher layers, one
    per student layer. Student layer i's output is matched with teacher layer layer_map[i]'s output.
    """

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(default_factory=lambda: dict(TINYBERT_WEIGHTS))
    pred_loss: Literal["mse", "kl"] = Field("mse", description="mse (paper) | kl (Hinton, ×T²).")
    temperature: float = Field(1.0, gt=0, allow_inf_nan=False, description="Softmax temperature of --pred-loss kl.")
    attention: Literal["probs", "scores"] = Field(
        "probs", description="probs (post-softmax, default) | scores (pre-softmax).")
    layer_map: Literal["uniform", "provenance"] | list[int] | None = Field(
        None, json_schema_extra=cli("--kd-layer-map"),
        description="uniform (k = i·N_T/N_S) | provenance | 0-indexed teacher layers; default: provenance, else uniform.")
    relation_heads: int | None = Field(None, ge=1, description="Relation heads of --w-rel (MiniLMv2; default: the "
                                       "teacher's attention heads; must divide both models' widths).")
    relation_layer: int | None = Field(None, ge=0, description="0-indexed teacher layer of --w-rel (default: the last "
                                       "for up to 12 layers, else the upper-middle one, as MiniLMv2 found best).")
    teacher_dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="float32 | bfloat16 | float16 (the frozen teacher's weights).")
    allow_untrained_teacher: bool = Field(False, description="Distil from a teacher that looks untrained.")
    teacher_cache: bool = Field(True, description="Compute the teacher's outputs once and reuse them in every epoch, "
                                "resumed run and grid cell (when they fit --teacher-cache-gb).")
    teacher_cache_gb: float = Field(4.0, gt=0, description="Largest teacher-output cache to build (GB).")
    teacher_cache_dtype: Literal["float16", "float32"] = Field("float16", description="Storage of cached outputs.")
    allow_weak_teacher: bool = Field(False, description="Distil from a teacher whose dev F1 does not beat the "
                                     "trivial baselines by --teacher-margin.")
    teacher_margin: float = Field(0.05, ge=0, le=1, description="F1 margin (0.05 = 5 points) by which a teacher "
                                  "must beat the majority / random baseline on dev.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand_weights(cls, data: Any) -> Any:
        """Top-level keys naming a registered term are weights; they update the TinyBERT defaults."""
        if not isinstance(data, dict):
            return data
        from polydistill.distill.terms import term_names

        data = dict(data)
        names = set(term_names())
        given = {k: data.pop(k) for k in list(data) if k in names}
        weights = {**TINYBERT_WEIGHTS, **dict(data.get("weights") or {}), **given}
        data["weights"] = weights
        return data

    @field_validator("layer_map", mode="before")
    @classmethod
    def _parse_layer_map(cls, value):
        # CLI form: "1,3,5" → [1, 3, 5]
        if isinstance(value, str) and value not in ("uniform", "provenance", ""):
            try:
                return [int(part) for part in value.split(",") if part.strip()]
            except ValueError as err:
                raise ValueError("layer_map is 'uniform', 'provenance' or comma-separated teacher layers") from err
        return value or None

    @field_validator("weights")
    @classmethod
    def _check_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        from polydistill.distill.terms import term_names

        known = term_names()
        for name, weight in weights.items():
            if name not in known:
                raise ValueError(f"unknown KD term {name!r}; registered terms: {', '.join(known)}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"the {name} weight must be a finite number ≥ 0, not {weight}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError("every loss weight is 0; switch at least one term on")
        return weights

    @property
    def active(self) -> dict[str, float]:
        """Non-zero weights only, in registry order."""
        from polydistill.distill.terms import term_names

        return {name: self.weights[name] for name in term_names() if self.weights.get(name, 0) > 0}

    def weight(self, name: str) -> float:
        return self.weights.get(name, 0.0)


if TYPE_CHECKING:  # a run-time subclass with other defaults; to a type checker, its base
    _LMTraining = TrainSettings
else:
    _LMTraining = with_defaults(TrainSettings, "LMTrainSettings", learning_rate=5e-4, warmup_ratio=0.05,
                                batch_size=16, eval_steps=200, logging_steps=10)


class LMDistillSettings(_LMTraining):
    """lm-distill's settings: the training settings (with Singh et al. 2023's defaults) plus the triplet loss."""

    layers: int = Field(6, ge=1, description="Student depth.")
    layer_map: str = Field("alternate-first", description="Teacher layers to copy; alternate-first = 2n-1 (DistilBERT).")
    alpha_ce: float = Field(5.0, ge=0, allow_inf_nan=False, description="Weight of the soft-target KL·T² term.")
    alpha_mlm: float = Field(2.0, ge=0, allow_inf_nan=False, description="Weight of the student's MLM loss.")
    alpha_cos: float = Field(1.0, ge=0, allow_inf_nan=False, description="Weight of the last-hidden-state cosine loss.")
    alpha_mse: float = Field(0.0, ge=0, allow_inf_nan=False,
                             description="Weight of a last-hidden-state MSE (off by default).")
    temperature: float = Field(2.0, gt=0, allow_inf_nan=False, description="Softmax temperature T of the soft targets.")
    mlm_probability: float = Field(0.15, gt=0, le=1, description="Share of tokens masked for MLM.")
    mlm_smoothing: float = Field(0.7, ge=0, description="Mask token w with probability ∝ count(w)^-s (0 = uniform).")
    fit_teacher_head_steps: int = Field(
        300, ge=0, description="Teacher without an MLM head (e.g. e5): fit a head on the frozen teacher's states at "
        "the masked tokens of this many batches first (to its best held-out MLM loss), giving soft targets; 0 drops "
        "the soft-target term (with a warning) and keeps MLM + cosine.")
    fit_teacher_head_lr: float = Field(1e-3, gt=0, description="Learning rate of that head fit.")
    teacher_head_dir: Path | None = Field(
        None, description="Keep that fitted head in this folder, named by what decides it (teacher weights, corpus, "
        "fit and masking settings), so runs that differ only in the distillation (loss weights, temperature, steps) "
        "fit it once (default: the run's work dir).")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the corpus held out for validation.")
    max_lines: int | None = Field(None, ge=1, description="Use only the first N corpus lines.")

    @model_validator(mode="after")
    def _some_term(self) -> LMDistillSettings:
        if not any(w > 0 for w in self.weights().values()):
            raise ValueError("at least one loss weight (--alpha-*) must be > 0")
        return self

    def weights(self) -> dict[str, float]:
        return {"ce": self.alpha_ce, "mlm": self.alpha_mlm, "cos": self.alpha_cos, "mse": self.alpha_mse}

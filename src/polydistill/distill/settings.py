"""Settings of a training run (fine-tuning or KD), validated with pydantic.

``TrainSettings`` is shared by ``finetune`` and ``distill``; ``KDSettings`` adds the TinyBERT
objective (000 §2.1): loss = w_att·L_att + w_hid·L_hid + w_emb·L_embd + w_pred·L_pred + w_ce·CE.
A weight of 0 switches its term off: it is neither computed nor captured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class TrainSettings(BaseModel):
    """How to train: the paper's protocol (000 §3) is AdamW with library defaults, eval every N
    steps, best checkpoint by dev F1. ``output_dir`` receives the best model as an ordinary HF
    directory; checkpoints live in ``<output_dir>.work/`` until the run finishes."""

    model_config = ConfigDict(extra="forbid")

    output_dir: Path
    epochs: float = Field(3.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="evaluate + checkpoint every N steps; None: each epoch")
    max_length: int = Field(128, ge=8)
    seed: int = 0
    freeze_word_embeddings: bool = False
    grad_accum: int = Field(1, ge=1)
    fp16: bool = False
    bf16: bool = False
    max_steps: int = Field(-1, description="stop after N optimiser steps (overrides epochs when > 0)")
    logging_steps: int = Field(50, ge=1)
    progress: bool = True  # the Trainer's progress bar (grids and the demo show their own)
    resume: bool = Field(True, description="resume from the last checkpoint in <output_dir>.work/ if any")
    overwrite: bool = False
    save_total_limit: int = Field(2, ge=1)
    keep_checkpoints: bool = Field(False, description="keep <output_dir>.work/ after a successful run")
    early_stopping_patience: int | None = Field(None, ge=1, description="evaluations without dev-F1 gain")
    cache_dir: Path | None = Field(None, description="tokenised-data cache (data layer)")

    @model_validator(mode="after")
    def _one_precision(self) -> TrainSettings:
        if self.fp16 and self.bf16:
            raise ValueError("choose at most one of fp16 and bf16")
        return self

    @property
    def work_dir(self) -> Path:
        return self.output_dir.with_name(self.output_dir.name + ".work")


class KDSettings(BaseModel):
    """The KD objective. Defaults follow 000 §2.1: all weights 1, MSE prediction loss.

    ``attention``: ``probs`` (default) compares post-softmax attention probabilities, what Hugging
    Face returns and what the paper's equations describe; ``scores`` compares pre-softmax scores
    QK^T/sqrt(d), as TinyBERT's released code does.
    ``layer_map``: None → the student's provenance ``teacher_layers`` when recorded, else TinyBERT's
    k = i·N_T/N_S; ``"uniform"`` forces k = i·N_T/N_S; a list gives 0-indexed teacher layers, one
    per student layer. Student layer i's output is matched with teacher layer layer_map[i]'s output.
    """

    model_config = ConfigDict(extra="forbid")

    att: float = Field(1.0, ge=0)
    hid: float = Field(1.0, ge=0)
    emb: float = Field(1.0, ge=0)
    pred: float = Field(1.0, ge=0)
    ce: float = Field(1.0, ge=0)
    pred_loss: Literal["mse", "kl"] = "mse"
    temperature: float = Field(1.0, gt=0)
    attention: Literal["probs", "scores"] = "probs"
    layer_map: Literal["uniform", "provenance"] | list[int] | None = None
    teacher_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    allow_untrained_teacher: bool = False

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

    @model_validator(mode="after")
    def _some_term(self) -> KDSettings:
        if self.att + self.hid + self.emb + self.pred + self.ce == 0:
            raise ValueError("every loss weight is 0; switch at least one term on")
        return self

    @property
    def weights(self) -> dict[str, float]:
        """Non-zero weights only, in logging order."""
        all_weights = {"att": self.att, "hid": self.hid, "emb": self.emb, "pred": self.pred, "ce": self.ce}
        return {name: w for name, w in all_weights.items() if w > 0}

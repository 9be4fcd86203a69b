"""lm-distill's settings (light: pydantic only, so the CLI builds its flags without importing torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from polydistill.distill.settings import TrainSettings, with_defaults

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
        300, ge=0, description="Teacher without an MLM head (e.g. e5): train a head on the frozen teacher for this "
        "many steps first, giving soft targets; 0 drops the soft-target term (with a warning) and keeps MLM + cosine.")
    fit_teacher_head_lr: float = Field(1e-3, gt=0, description="Learning rate of that head fit.")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the corpus held out for validation.")
    max_lines: int | None = Field(None, ge=1, description="Use only the first N corpus lines.")

    @model_validator(mode="after")
    def _some_term(self) -> LMDistillSettings:
        if not any(w > 0 for w in self.weights().values()):
            raise ValueError("at least one loss weight (--alpha-*) must be > 0")
        return self

    def weights(self) -> dict[str, float]:
        return {"ce": self.alpha_ce, "mlm": self.alpha_mlm, "cos": self.alpha_cos, "mse": self.alpha_mse}

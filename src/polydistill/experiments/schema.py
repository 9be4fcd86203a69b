"""The experiment-grid config: a pydantic model of the YAML files in ``configs/``.

One file declares a grid (teachers × datasets × student inits × KD × sizes × fractions × seeds);
:mod:`polydistill.experiments.grid` expands it into typed run specs. Paths accept ``~`` and
environment variables so the same file works on every machine.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from polydistill.distill.settings import KDSettings, Training, with_defaults
from polydistill.errors import PolydistillError
from polydistill.experiments.lang_grid import LanguageStudents

SCHEMA_VERSION = 1

Init = Literal["from-scratch", "from-base", "from-teacher"]
Languages = str | list[str]  # "all" | "seen" | "unseen" | "english" | list of codes | comma string


@overload
def expand_path(value: str) -> str: ...
@overload
def expand_path(value: None) -> None: ...
def expand_path(value: str | None) -> str | None:
    """``~`` and ``$VARS`` expanded; hub ids (no ``~``/``$``) pass through unchanged."""
    if value is None:
        return None
    return os.path.expanduser(os.path.expandvars(value))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The grid runs the paper's protocol (Wibowo et al. 2024, §3: 30 epochs, KD without the gold-label CE term). Those
# defaults are stated once, here, as overrides of the library's own settings models: every bound
# and every other default lives in polydistill.distill.settings.
if TYPE_CHECKING:  # a run-time subclass with other defaults; to a type checker, its base
    TrainingConfig = Training
else:
    TrainingConfig = with_defaults(Training, "TrainingConfig", epochs=30, eval_batch_size=64, logging_steps=10)
GRID_KD_WEIGHTS = {"ce": 0.0}


def grid_kd(value: Any) -> KDSettings:
    """A grid's ``kd:`` mapping → KDSettings with the grid's default weights under the user's."""
    if isinstance(value, KDSettings):
        return value
    value = dict(value or {})
    weights = {**GRID_KD_WEIGHTS, **dict(value.pop("weights", None) or {})}
    return KDSettings(weights=weights, **value)


class TeacherConfig(_Strict):
    name: str = Field(..., description="short label used in tables, e.g. xlmr")
    model: str = Field(..., description="pretrained model: local dir or hub id")
    base: str | None = Field(None, description="checkpoint for from-base students (default: model)")
    train_languages: Languages = "all"

    @field_validator("model", "base")
    @classmethod
    def _expand(cls, value: str | None) -> str | None:
        return expand_path(value)


class DatasetConfig(_Strict):
    name: str = Field(..., description="massive | massive-slots | tsm | universal-ner | a generic file path")
    train_fraction: float | None = Field(
        None, gt=0, le=1, description="stratified subset of the train split used by every run (CPU scale)"
    )
    max_eval_per_language: int | None = Field(
        None, ge=1, description="cap on validation/test examples per language (CPU scale)"
    )
    max_dev_per_language: int | None = Field(
        None, ge=1, description="cap on validation examples per language (default: max_eval_per_language)"
    )
    eval_steps: int | None = Field(None, ge=1, description="per-dataset override of training.eval_steps")
    teacher_max_steps: int | None = Field(
        None, ge=1, description="per-dataset override of teacher_training.max_steps (a teacher that converges later)"
    )
    train_languages: Languages | None = Field(
        None, description="per-dataset override of the teachers' train_languages (codes differ per dataset)"
    )
    eval_languages: list[Languages] | dict[str, Languages] | None = Field(
        None, description="per-dataset override of the top-level eval_languages"
    )
    student_train_languages: list[Languages] | None = Field(
        None, description="per-dataset override of students.train_languages (e.g. [teacher] for a dataset "
        "with no English train split)"
    )


class StudentGrid(_Strict):
    inits: list[Init] = ["from-teacher"]
    kd: list[bool] = [True]
    layers: list[int | None] = Field([None], description="student depth; None = half the teacher")
    hidden: list[int | None] = Field([None], description="student width; None = the teacher's")
    layer_map: str | list[int] = "alternate-last"
    fractions: list[float] = Field([1.0], description="fraction of the train data for the student (§5.2)")
    train_languages: list[Languages] = Field(
        ["teacher"], description="'teacher' = same as the teacher, or all/seen/english/list"
    )
    intermediate: list[int | None] = Field([None], description="student FFN size; None = the teacher's")
    width_select: list[Literal["uniform", "importance"]] = Field(
        ["uniform"], description="width selection of narrower students (importance: calibrated on the train split)")
    objectives: dict[str, dict[str, float]] | None = Field(
        None, description="named KD weight sets over the grid's kd (e.g. rel: {att: 0, hid: 0, emb: 0, rel: 1}); "
        "None = the grid's kd only")
    unlabelled: list[str | None] = Field(
        [None], description="teacher-labelled augmentation sources for KD cells (DATASET:LANGUAGES or a file)")
    unlabelled_max: int | None = Field(
        None, ge=1, description="use at most N examples of each unlabelled source (a fixed sample per seed)")
    stages: list[Literal[1, 2]] = Field(
        [1], description="2 = depth first at full width, then width (by width_select) on that student")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0 < value <= 1:
                raise ValueError(f"fraction {value} must be in (0, 1]")
        return values

    @field_validator("layers", "hidden", "intermediate")
    @classmethod
    def _positive(cls, values: list[int | None]) -> list[int | None]:
        if any(v is not None and v < 1 for v in values):
            raise ValueError("layer counts and hidden sizes must be positive")
        return values


class ExperimentConfig(_Strict):
    schema_version: int = SCHEMA_VERSION
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    paper_ref: str = ""
    work_dir: str | None = None
    data_root: str | None = Field(None, description="local data root (default: $POLYDISTILL_DATA_ROOT or the hub)")
    teachers: list[TeacherConfig] = Field(..., min_length=1)
    datasets: list[DatasetConfig] = Field(..., min_length=1)
    eval_languages: list[Languages] | dict[str, Languages] = Field(
        default_factory=lambda: list[Languages](["all"]), description="test-set language groups reported; a mapping names them (e.g. seen: [en-US, de-DE])"
    )
    seeds: list[int] = Field([0], min_length=1)
    teacher_seed: int | None = Field(
        None, description="one teacher per (model, dataset) trained with this seed and shared by all students; "
        "None = the first seed"
    )
    students: StudentGrid | None = StudentGrid()
    copy_without_finetune: bool = Field(False, description="also evaluate each copied student directly (§5.1)")
    teacher_training: TrainingConfig = Field(default_factory=TrainingConfig)
    student_training: TrainingConfig = Field(default_factory=TrainingConfig)
    kd: KDSettings = Field(default_factory=lambda: grid_kd({}))
    keep_student_models: bool = Field(False, description="keep student model dirs after evaluation")
    teacher_gate_margin: float | None = Field(
        0.05, ge=0, le=1, description="stop the grid when a teacher's dev F1 does not beat the majority / random "
        "baseline by this margin (0.05 = 5 points); null switches the gate off")
    torch_threads: int | None = Field(None, ge=1)
    language_students: LanguageStudents | None = Field(
        None, description="one block of cells per language: teacher, language-specific (lm-distilled) students and "
        "baselines (Singh et al. 2023; see experiments/lang_grid.py); set students: null with it")

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is not supported; this polydistill reads version {SCHEMA_VERSION}")
        return value

    @field_validator("kd", mode="before")
    @classmethod
    def _grid_kd(cls, value: Any) -> KDSettings:
        return grid_kd(value)

    @field_validator("work_dir", "data_root")
    @classmethod
    def _expand(cls, value: str | None) -> str | None:
        return expand_path(value)

    @model_validator(mode="after")
    def _objectives_are_valid(self) -> ExperimentConfig:
        for name, weights in ((self.students.objectives if self.students else None) or {}).items():
            try:
                KDSettings(**{**self.kd.model_dump(exclude={"weights"}), "weights": {**self.kd.weights, **weights}})
            except ValidationError as err:
                raise ValueError(f"objective {name!r}: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None
        return self

    @model_validator(mode="after")
    def _one_kind_of_students(self) -> ExperimentConfig:
        if self.language_students is not None and self.students is not None and "students" in self.model_fields_set:
            raise ValueError("language_students makes its own students (variants and baselines); set students: null")
        if self.language_students is not None and self.copy_without_finetune:
            raise ValueError("copy_without_finetune is not a cell of a language_students grid")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [t.name for t in self.teachers]
        if len(set(names)) != len(names):
            raise ValueError(f"teacher names must be unique, got {names}")
        datasets = [d.name for d in self.datasets]
        if len(set(datasets)) != len(datasets):
            raise ValueError(f"dataset names must be unique, got {datasets}")
        return self


def _one_sentence(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "top level"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling against configs/paper/*.yaml)"
    elif first["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    return f"{source}: invalid value at '{where}': {msg}{more}."


def parse_config(data: dict[str, Any], source: str = "config") -> ExperimentConfig:
    if not isinstance(data, dict):
        raise PolydistillError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}.")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise PolydistillError(_one_sentence(err, source)) from None


def builtin_configs() -> dict[str, Path]:
    """The grid configs shipped in the package (``polydistill/configs/{cpu,paper}/*.yaml``; the repository's
    ``configs/`` folder is the same files), by ``cpu/<name>`` / ``paper/<name>``."""
    root = Path(str(resources.files("polydistill") / "configs"))
    return {f"{p.parent.name}/{p.stem}": p for p in sorted(root.glob("*/*.yaml"))}


def resolve_config(name: str | os.PathLike) -> Path:
    """A YAML file as given, else a built-in config by name: ``cpu/table1_all_languages`` or, where only one
    folder has it, ``table1_all_languages``; an ambiguous or unknown name is one sentence."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = builtin_configs()
    key = str(name).removesuffix(".yaml").removeprefix("configs/")
    matches = [k for k in shipped if k == key or k.split("/", 1)[1] == key]
    if len(matches) == 1:
        return shipped[matches[0]]
    if matches:
        raise PolydistillError(f"config {name} is built in for several setups ({', '.join(matches)}); name one of "
                               "them.")
    raise PolydistillError(f"config {name} does not exist; pass a YAML file or a built-in config "
                           f"({', '.join(sorted(shipped))}).")


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate a grid YAML (a file, or a built-in config by name); any problem is one sentence
    naming the key."""
    import yaml

    path = resolve_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PolydistillError(f"{path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    return parse_config(data, source=str(path))

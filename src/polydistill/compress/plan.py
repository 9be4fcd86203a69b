"""compress, planning: the settings of one run, the size presets, the candidate architectures that
``--target-speedup`` measures, the KD schedule that ``--budget-minutes`` fits, the up-front refusals,
and the fingerprint that ties a compress directory to one command.

Everything here is arithmetic on the teacher's config and on measured times; nothing is trained or
written (the measurements themselves are in :mod:`polydistill.compress.measure`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polydistill.distill.settings import MAX_SEED, KDSettings, Training, with_defaults
from polydistill.errors import PolydistillError, require

SIZES = ("tiny", "small", "base")
DEFAULT_SIZE = "small"
# The stages of a run, in order (``compress.stages`` runs them; each writes ``stages/<n>-<name>/done.json``).
STAGES = ("plan", "vocab", "depth", "width", "kd", "int8", "evaluate", "bench")
# Where a setting is read outside the stages: by the runner (``compress()``: inputs, output, threads, upload)
# or only by the report card.
OTHER_PLACES = ("run", "report")
# The training defaults of compress (the e5 recipe of the README): KD at 2e-4 with frozen word embeddings,
# bf16 where the CPU has it. Every other bound and default is Training's.
if TYPE_CHECKING:  # a run-time subclass with other defaults; to a type checker, its base
    CompressTraining = Training
else:
    CompressTraining = with_defaults(Training, "CompressTraining", learning_rate=2e-4, precision="auto",
                                     freeze_word_embeddings=True)
DEFAULT_COVERAGE = 0.99
KD_STEP_FACTOR = 1.15  # KD step ≤ 1.15 × (student step + teacher forward): docs/performance.md (a)
BUDGET_SAFETY = 0.10  # share of the budget kept free for loading, tokenising, checkpoints
KD_EVALUATIONS = 4  # dev evaluations (checkpoints) during a budgeted KD run, plus the final one
FINGERPRINT_VERSION = 1
# --prune-rounds auto: the fewest rounds in which no round removes more than this share of the encoder parameters
# (Muralidharan et al. 2024; Gurgurov et al. 2025), tried up to AUTO_MAX_ROUNDS rounds
MAX_ROUND_REMOVAL = 0.30
AUTO_MAX_ROUNDS = 12


def used_by(*stages: str, cli: tuple[str, ...] = (), fingerprint: bool | Literal["unless-default"] = True,
            recorded: Literal["always", "unless-default"] = "always") -> dict[str, Any]:
    """The metadata (``json_schema_extra``) every compress setting declares next to its default, bound and help:

    * ``stages``: the stages whose output it decides (their ``done.json`` records it), or ``"run"`` (read by
      the runner only) / ``"report"`` (read by the report card only);
    * ``cli``: the command-line flags when not ``--<field-name>`` (the first is the main name, the rest aliases);
    * ``fingerprint``: ``False`` for a setting that changes no number of the run (a re-run may change it; a
      stage that reads it does not record it in its ``done.json`` settings);
      ``"unless-default"`` for a setting added after compress directories were recorded: left out of the
      fingerprint at its default, so that those directories keep their fingerprint and resume;
    * ``recorded``: ``"unless-default"`` for a setting added after stage records were committed: the stages'
      ``done.json`` settings name it only when it is not at its default, so that those records stay as they were."""
    if not stages or set(stages) - set(STAGES + OTHER_PLACES):
        raise ValueError(f"a compress setting names the stages that read it ({', '.join(STAGES + OTHER_PLACES)}), "
                         f"not {stages}")
    return {"stages": list(stages), **({"cli": list(cli)} if cli else {}), "fingerprint": fingerprint,
            **({"recorded": recorded} if recorded != "always" else {})}


class CompressSettings(BaseModel):
    """One ``polydistill compress`` run. ``training`` holds the KD hyper-parameters (``Training``'s
    fields with compress' defaults); everything else says what to build and how to measure it.

    The one place a compress setting is written: its type, default, bound and help here, and with
    :func:`used_by` the stages that read it, its flags and its fingerprint rule. The command's flags
    (``cli/compress.py``), the stages' ``done.json`` settings and the fingerprint derive from these fields."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(description="Fine-tuned teacher directory (or hub id).", json_schema_extra=used_by("run"))
    dataset: str = Field(description="massive | massive-slots | tsm | universal-ner (uner) | a directory of your own data (the "
                         "teacher's dataset).", json_schema_extra=used_by("run", cli=("--dataset", "-d", "--data")))
    languages: str | list[str] = Field("all", description="The KD languages (seen): all (the teacher's training "
                                       "languages) | seen | unseen | english | comma list of codes (see: "
                                       "polydistill data languages).",
                                       json_schema_extra=used_by("plan", "vocab", cli=("--languages", "-l")))
    unseen_languages: list[str] = Field(
        default_factory=list, description="Languages reported separately (zero-shot: never trained on; their "
        "vocabulary is kept), comma list.", json_schema_extra=used_by("plan", "vocab"))
    data_root: str | None = Field(None, description="Folder with massive/, tsm/, universal-ner/ (else "
                                  "$POLYDISTILL_DATA_ROOT, else the hub).", json_schema_extra=used_by("run"))
    out: Path = Field(description="Output directory (every stage's output, the final models, the report).",
                      json_schema_extra=used_by("run", cli=("--out", "-o"), fingerprint=False))
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of every random choice of the run.",
                      json_schema_extra=used_by("depth", "width", "kd"))
    # -- the student
    size: Literal["tiny", "small", "base"] | None = Field(
        None, description="tiny | small | base (scaled from the teacher; e5-small: 4×192/768, 6×192/768, "
        "6×384/1536). Default: small unless sizes or --target-speedup are given.", json_schema_extra=used_by("plan"))
    layers: int | None = Field(None, ge=1, description="Student depth (replaces the preset's).",
                               json_schema_extra=used_by("plan"))
    hidden: int | None = Field(None, ge=1, description="Student hidden size (a multiple of the head count: the "
                               "teacher's unless --heads).", json_schema_extra=used_by("plan"))
    intermediate: int | None = Field(None, ge=1, description="Student FFN size (default: scaled with --hidden).",
                                     json_schema_extra=used_by("plan"))
    heads: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        None, description="Student attention heads. Default: the teacher's count, each head narrowed to hidden ÷ "
        "heads (e5-small's 6×192 student: 12 heads of 16); fewer keeps the most important whole heads (6 of 32); "
        "auto (with --target-speedup): each candidate width measured both ways, the faster kept.",
        json_schema_extra=used_by("plan", fingerprint="unless-default", recorded="unless-default"))
    layer_map: str = Field("alternate-last", description="Which teacher layers the depth copy takes: alternate-last "
                           "(the paper's), alternate-first, first, last, 0,5,11, or importance.",
                           json_schema_extra=used_by("depth"))
    width_select: Literal["importance", "uniform"] = Field(
        "importance", description="importance | uniform (hidden / FFN selection when the width shrinks).",
        json_schema_extra=used_by("width"))
    calibration_size: int = Field(256, ge=1, description="Training examples that score importance.",
                                  json_schema_extra=used_by("depth", "width"))
    prune_rounds: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1, description="Iterative prune-and-distil: reach the student's shape in N rounds of depth copy, width "
        "selection and KD from the teacher, each from the previous round's student (shapes interpolated "
        "geometrically; KD steps or budget split equally); auto = the fewest rounds in which none removes more than "
        "30% of the encoder parameters; 1 = one shot.",
        json_schema_extra=used_by("plan", fingerprint="unless-default", recorded="unless-default"))
    # -- the vocabulary (the plan sizes --target-params candidates with the vocabulary stage's plan)
    vocab_coverage: float | None = Field(None, gt=0, le=1, description="Held-out token coverage each language's "
                                         "vocabulary must reach (default 0.99, or the most the sources reach).",
                                         json_schema_extra=used_by("plan", "vocab"))
    wordfreq: bool = Field(True, description="Add the wordfreq word list of each language that has one to the "
                           "vocabulary sources.", json_schema_extra=used_by("plan", "vocab"))
    wordfreq_words: int = Field(50_000, ge=1, description="Top words per wordfreq list.",
                                json_schema_extra=used_by("plan", "vocab"))
    # -- targets that steer the run
    target_speedup: float | None = Field(None, gt=0, allow_inf_nan=False, description="Pick the largest student "
                                         "whose measured throughput speed-up over the teacher reaches N.",
                                         json_schema_extra=used_by("plan"))
    speedup_on: Literal["int8", "fp32", "best"] = Field(
        "int8", description="int8 | fp32 | best: the form of the candidates --target-speedup measures (int8 = "
        "dynamic int8 ONNX, the default deployable; best = each candidate in its fastest runtime on this machine, "
        "as --runtime auto ships it: torch bf16 on AMX CPUs, int8 ONNX on AVX2 ones).",
        json_schema_extra=used_by("plan"))
    speedup_repeats: int = Field(3, ge=1, description="Timed repeats per candidate.", json_schema_extra=used_by("plan"))
    budget_minutes: float | None = Field(None, gt=0, allow_inf_nan=False, description="Fit the number of KD steps "
                                         "to this many minutes of KD (training + dev evaluations), from a measured "
                                         "step time.", json_schema_extra=used_by("plan"))
    # -- KD
    training: CompressTraining = Field(
        default_factory=CompressTraining, description="The KD hyper-parameters (Training's fields and flags, with "
        "compress' defaults).", json_schema_extra=used_by("kd"))
    kd_weights: dict[str, float] = Field(
        default_factory=dict, description="NAME=WEIGHT overriding a KD term's weight (default: att, hid, emb, pred, "
        "ce = 1; rel = 1 when the width changes; att = 0 with fewer heads).",
        json_schema_extra=used_by("kd", cli=("--kd-term",)))
    fraction: float | None = Field(None, gt=0, le=1, description="Stratified fraction of the train split (per "
                                   "language and label).", json_schema_extra=used_by("kd"))
    max_dev_per_language: int = Field(500, ge=0, description="Evaluate during training on at most N validation "
                                      "examples per language (a fixed sample; 0 = all): a full UNER dev pass costs "
                                      "minutes on a CPU.", json_schema_extra=used_by("kd"))
    allow_untrained_teacher: bool = Field(False, description="Distil from a teacher that looks untrained.",
                                          json_schema_extra=used_by("kd"))
    allow_weak_teacher: bool = Field(False, description="Distil from a teacher that does not beat the trivial "
                                     "baselines.", json_schema_extra=used_by("kd"))
    unlabelled_data: str | None = Field(None, description="Teacher-labelled augmentation: DATASET:LANGUAGES (their "
                                        "train inputs, e.g. massive:it-IT,nl-NL) or a text/JSONL file ([LANG=]FILE); "
                                        "counts in the KD terms only, never in CE.",
                                        json_schema_extra=used_by("kd", fingerprint="unless-default"))
    unlabelled_max: int | None = Field(None, ge=1, description="Use at most N unlabelled examples (a fixed sample).",
                                       json_schema_extra=used_by("kd", fingerprint="unless-default"))
    teacher_cache_gb: float = Field(
        KDSettings.model_fields["teacher_cache_gb"].default, gt=0, allow_inf_nan=False,
        description="Largest teacher-output cache KD builds (GB); a larger one is skipped (a warning; the report "
        "says so) and every KD step runs the teacher. Speed only: changes no result.",
        json_schema_extra=used_by("kd", fingerprint=False))
    # -- evaluation and bench
    max_test_per_language: int | None = Field(None, ge=1, description="Evaluate every model on at most N test "
                                              "examples per language (fixed sample).",
                                              json_schema_extra=used_by("evaluate"))
    bench_lengths: list[int] = Field(default_factory=lambda: [32, 128], description="Sequence lengths of the speed "
                                     "measurements.", json_schema_extra=used_by("plan", "bench"))
    bench_batch_size: int = Field(32, ge=1, description="Batch of the throughput numbers.",
                                  json_schema_extra=used_by("plan", "bench"))
    bench_repeats: int = Field(5, ge=1, description="Timed repeats of the final bench.",
                               json_schema_extra=used_by("bench"))
    runtime: Literal["onnx-int8-unfused", "auto", "torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8",
                     "onnx-int8-static", "openvino", "openvino-int8"] = Field(
        "onnx-int8-unfused", description="The deployable's runtime (DIR/model-int8): onnx-int8-unfused (dynamic int8 "
        "ONNX, as before) | auto (the fastest on this machine for b32 L128 and b1 L32 that passes the fidelity gate "
        "on the test split: torch bf16 on AMX CPUs, int8 ONNX on AVX2/AVX-512 ones; see polydistill export "
        "--runtime) | one runtime by name.", json_schema_extra=used_by("int8", fingerprint="unless-default"))
    bench_threads: int | None = Field(1, ge=1, description="torch / onnxruntime threads while timing (1: stable on "
                                      "a shared machine).", json_schema_extra=used_by("plan", "bench"))
    bootstrap_resamples: int = Field(1000, ge=1, description="Resamples of the retention intervals.",
                                     json_schema_extra=used_by("report"))
    # -- judged in the report only (--target-params also bounds the plan's choice of candidate)
    target_retention_seen: float = Field(0.95, gt=0, description="Report target: student F1 ÷ teacher F1 on the "
                                         "seen languages.", json_schema_extra=used_by("report", fingerprint=False))
    target_retention_unseen: float = Field(0.90, gt=0, description="Report target on the unseen languages.",
                                           json_schema_extra=used_by("report", fingerprint=False))
    target_params: float | None = Field(None, gt=0, le=1, description="The student's parameters as a share of the "
                                        "teacher's, e.g. 0.10: with --target-speedup the plan picks the largest "
                                        "candidate that fits it (with the planned vocabulary); reported.",
                                        json_schema_extra=used_by("plan"))
    target_wall_minutes: float | None = Field(None, gt=0, description="Report target: the wall time of all stages.",
                                              json_schema_extra=used_by("report", fingerprint=False))
    # -- how this run runs
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice).",
                                json_schema_extra=used_by("run", fingerprint=False))
    overwrite: bool = Field(False, description="Replace an existing output.",
                            json_schema_extra=used_by("run", fingerprint=False))
    push_to_hub: str | None = Field(None, description="Upload the student to this Hub repo id and its int8 export "
                                    "to <id>-int8.", json_schema_extra=used_by("run", fingerprint=False))
    progress: bool = Field(True, description="Progress switch of library calls (the command always shows its display).",
                           json_schema_extra=used_by("run", fingerprint=False))

    @field_validator("unseen_languages", mode="before")
    @classmethod
    def _split_codes(cls, value):
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("prune_rounds", mode="before")
    @classmethod
    def _rounds(cls, value):
        """A whole number or ``auto`` (the flag's text too)."""
        if isinstance(value, str):
            if value.strip().lower() == "auto":
                return "auto"
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"the prune rounds are a whole number (1 = one shot) or auto, got {value!r}") from None
        return value

    @field_validator("kd_weights", mode="before")
    @classmethod
    def _term_weights(cls, value):
        """``NAME=WEIGHT`` items (``--kd-term``, repeatable) or a dict."""
        if value is None:
            return {}
        if isinstance(value, (list, tuple)):
            weights = {}
            for item in value:
                name, _, weight = str(item).partition("=")
                try:
                    weights[name.strip()] = float(weight)
                except ValueError:
                    raise ValueError(f"a KD term weight is NAME=WEIGHT such as rel=1.0, got {item!r}") from None
            return weights
        return value

    @field_validator("bench_lengths", mode="before")
    @classmethod
    def _split_lengths(cls, value):
        if isinstance(value, str):
            try:
                return [int(part) for part in value.split(",") if part.strip()]
            except ValueError:
                raise ValueError(f"bench lengths are comma-separated integers such as 32,128, got {value!r}") from None
        return value

    @field_validator("bench_lengths")
    @classmethod
    def _lengths(cls, value: list[int]) -> list[int]:
        if not value or any(n < 1 for n in value):
            raise ValueError("bench lengths must be positive, e.g. 32,128")
        return sorted(set(value))

    def identity(self) -> dict[str, Any]:
        """The settings part of the fingerprint."""
        return settings_identity(self.model_dump(mode="json"), type(self))


def declared(model: type[BaseModel], key: str) -> dict[str, Any]:
    """Each field's :func:`used_by` declaration ``key`` (``stages``, ``cli``, ``fingerprint``)."""
    return {name: (field.json_schema_extra or {}).get(key) for name, field in model.model_fields.items()
            if isinstance(field.json_schema_extra, dict)}


def stage_fields(stage: str, model: type[BaseModel] = CompressSettings) -> list[str]:
    """The settings that decide ``stage``'s output (as declared on the fields, in field order)."""
    return [name for name, stages in declared(model, "stages").items() if stage in (stages or ())]


def at_default(model: type[BaseModel], key: str, value: Any) -> bool:
    """Whether the dumped ``value`` of ``model``'s field ``key`` is the field's default."""
    from pydantic_core import to_jsonable_python

    return bool(value == to_jsonable_python(model.model_fields[key].get_default(call_default_factory=True)))


def settings_identity(values: dict[str, Any], model: type[BaseModel] = CompressSettings) -> dict[str, Any]:
    """The fingerprinted part of dumped settings (a run's ``report.json`` ``settings`` too): without the
    fields declared ``fingerprint=False``, and without ``"unless-default"`` fields at their default."""
    rules = declared(model, "fingerprint")
    return {k: v for k, v in values.items() if rules.get(k, True) is not False
            and not (rules.get(k) == "unless-default" and at_default(model, k, v))}


# ----------------------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Architecture:
    layers: int
    hidden: int
    intermediate: int
    heads: int

    @property
    def name(self) -> str:
        """e.g. ``6L-h192-ffn768-12x16``: layers, hidden size, FFN size, heads × head size."""
        return f"{self.layers}L-h{self.hidden}-ffn{self.intermediate}-{self.heads}x{self.hidden // self.heads}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        return cls(int(data["layers"]), int(data["hidden"]), int(data["intermediate"]), int(data["heads"]))

    def changes_width(self, teacher: Architecture) -> bool:
        """True when this student is narrower than ``teacher`` (hidden, FFN or head count): the width stage then runs
        and the relation term (``rel``) is on by default."""
        return (self.hidden, self.intermediate, self.heads) != (teacher.hidden, teacher.intermediate, teacher.heads)

    def changes_heads(self, teacher: Architecture) -> bool:
        """True when this student keeps fewer heads than ``teacher``: KD's attention-map term (head by head) is then
        off by default and the relation term (any head count) carries the attention knowledge."""
        return self.heads != teacher.heads

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    def encoder_parameters(self) -> int:
        """Weights of the encoder layers (attention 4·H² + FFN 2·H·I, biases and LayerNorms): for ordering."""
        h, i = self.hidden, self.intermediate
        return self.layers * (4 * h * h + 4 * h + 2 * h * i + h + i + 4 * h)


def teacher_architecture(config) -> Architecture:
    return Architecture(int(config.num_hidden_layers), int(config.hidden_size), int(config.intermediate_size),
                        int(config.num_attention_heads))


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _narrow(hidden: float, heads: int) -> int:
    """The largest multiple of ``heads`` not above ``hidden`` (the heads are kept, each head shrinks)."""
    return max(heads, int(hidden // heads) * heads)


def preset(size: str, teacher: Architecture) -> Architecture:
    """The ``--size`` presets, scaled from the teacher's sizes (12×384/1536 e5-small in brackets):

    * ``base``:  half the layers (6), full width (384 / 1536);
    * ``small``: half the layers (6), half the hidden size (192) with every head kept (12 heads of 16),
      half the FFN (768);
    * ``tiny``:  a third of the layers (4), half the hidden size (192), half the FFN (768).

    Layer counts round half up (at least 1); a half hidden size that the head count does not divide
    is rounded down to a multiple of it."""
    require(size in SIZES, f"Unknown --size {size!r}; choose one of {', '.join(SIZES)}.")
    t = teacher
    depth = max(1, _round(t.layers / (3 if size == "tiny" else 2)))
    if size == "base":
        return Architecture(depth, t.hidden, t.intermediate, t.heads)
    return Architecture(depth, _narrow(t.hidden / 2, t.heads), max(1, _round(t.intermediate / 2)), t.heads)


def _scaled_intermediate(teacher: Architecture, hidden: int) -> int:
    return max(1, _round(teacher.intermediate * hidden / teacher.hidden))


def requested_architecture(settings: CompressSettings, teacher: Architecture) -> Architecture:
    """The student of ``--size`` / ``--layers/--hidden/--intermediate`` (without ``--target-speedup``).

    ``--size`` gives a preset whose fields the explicit options replace. Without ``--size``, explicit
    options change the teacher's sizes (as ``polydistill student`` does; a new ``--hidden`` scales the FFN
    with it unless ``--intermediate`` is given), and with no option at all the ``small`` preset is used."""
    explicit = {k: getattr(settings, k) for k in ("layers", "hidden", "intermediate") if getattr(settings, k)}
    if settings.size:
        start = preset(settings.size, teacher)
    elif explicit:
        start = teacher
    else:
        start = preset(DEFAULT_SIZE, teacher)
    hidden = explicit.get("hidden", start.hidden)
    intermediate = explicit.get("intermediate") or (
        _scaled_intermediate(teacher, hidden) if "hidden" in explicit else start.intermediate)
    heads = settings.heads if isinstance(settings.heads, int) else teacher.heads
    arch = Architecture(explicit.get("layers", start.layers), hidden, intermediate, heads)
    check_architecture(arch, teacher)
    return arch


def check_architecture(arch: Architecture, teacher: Architecture) -> None:
    """The impossible students, refused in one sentence each."""
    t = teacher
    require(arch.layers <= t.layers,
            f"--layers {arch.layers} is more than the teacher's {t.layers} layers; a student copies teacher layers.")
    require(arch.hidden <= t.hidden, f"--hidden {arch.hidden} is wider than the teacher's hidden size {t.hidden}.")
    if arch.heads == t.heads:
        require(arch.hidden % t.heads == 0,
                f"--hidden {arch.hidden} is not divisible by the teacher's {t.heads} attention heads, which compress "
                f"keeps unless --heads; choose a multiple of {t.heads} (e.g. {_narrow(arch.hidden, t.heads)}).")
    else:
        require(arch.heads <= t.heads, f"--heads {arch.heads} is more than the teacher's {t.heads} attention heads.")
        require(arch.hidden % arch.heads == 0,
                f"--hidden {arch.hidden} is not divisible by --heads {arch.heads}; choose a multiple of {arch.heads} "
                f"(e.g. {_narrow(arch.hidden, arch.heads)}).")
        require(arch.head_size <= t.head_size,
                f"{arch.heads} heads of a {arch.hidden}-wide student would be {arch.head_size} wide, wider than the "
                f"teacher's {t.head_size}; keep at least {-(-arch.hidden // t.head_size)} heads or narrow --hidden.")
    require(arch.intermediate <= t.intermediate,
            f"--intermediate {arch.intermediate} is larger than the teacher's FFN size {t.intermediate}.")


def head_counts(settings: CompressSettings, teacher: Architecture, hidden: int) -> list[int]:
    """The head counts a ``hidden``-wide candidate is measured with: ``--heads N`` alone; by default the
    teacher's (narrowed heads); ``--heads auto`` also as whole teacher-wide heads (e5-small at 192: 12 × 16 and
    6 × 32), where the width holds a whole number of them."""
    if isinstance(settings.heads, int):
        return [settings.heads]
    counts = [teacher.heads]
    whole = hidden // teacher.head_size
    if settings.heads == "auto" and hidden % teacher.head_size == 0 and 1 <= whole < teacher.heads:
        counts.append(whole)
    return counts


def candidate_architectures(settings: CompressSettings, teacher: Architecture) -> list[Architecture]:
    """What ``--target-speedup`` measures: depths of 1/2, 1/3, 1/4, 1/6, 1/12 of the teacher's (at least 1)
    × hidden sizes of 1, 1/2, 1/4 of the teacher's (FFN scaled alike) × :func:`head_counts`, largest first; an
    explicit ``--layers`` / ``--hidden`` / ``--intermediate`` / ``--heads`` fixes that size and the others are
    searched (with ``--heads N``, only widths that N heads divide)."""
    t = teacher
    depths = [settings.layers] if settings.layers else sorted(
        {max(1, _round(t.layers / d)) for d in (2, 3, 4, 6, 12)}, reverse=True)
    fixed_heads = settings.heads if isinstance(settings.heads, int) else t.heads
    widths = [settings.hidden] if settings.hidden else sorted(
        {_narrow(t.hidden / f, fixed_heads) for f in (1, 2, 4)}, reverse=True)
    out = []
    for layers in depths:
        for hidden in widths:
            intermediate = settings.intermediate or _scaled_intermediate(t, hidden)
            for heads in head_counts(settings, t, hidden):
                arch = Architecture(layers, hidden, intermediate, heads)
                if settings.hidden is None and isinstance(settings.heads, int) and arch.head_size > t.head_size:
                    continue  # a searched width too wide for --heads N
                if arch != t and arch not in out:
                    check_architecture(arch, t)
                    out.append(arch)
    require(out, "--target-speedup has no candidate student to measure: the fixed sizes equal the teacher's.")
    return sorted(out, key=lambda a: (-a.encoder_parameters(), -a.layers, -a.heads))


def choose_candidate(measured: list[dict[str, Any]], target: float, max_parameters: int | None = None) -> dict[str, Any]:
    """The largest measured candidate (most encoder parameters, then most layers, then the faster of two head
    layouts of one size) whose speed-up reaches
    ``target`` and, given ``max_parameters``, whose ``parameters_after_vocab`` fit it (when none fits both,
    the largest reaching the speed-up: the caller notes the miss); refused in one sentence, naming the best
    measured, when none reaches the speed-up."""
    reaching = [m for m in measured if m["speedup"] >= target]
    fitting = [m for m in reaching if max_parameters is not None and m["parameters_after_vocab"] <= max_parameters]
    reaching = fitting or reaching
    if not reaching:
        best = max(measured, key=lambda m: m["speedup"])
        raise PolydistillError(
            f"No candidate student reaches --target-speedup {target:g}: the fastest of the {len(measured)} measured "
            f"({best['architecture']['name']}) reaches {best['speedup']:.2f}× the teacher's throughput; lower the "
            "target.")
    return max(reaching, key=lambda m: (m["encoder_parameters"], m["architecture"]["layers"], m["speedup"]))


# ---------------------------------------------------------------------------- prune-and-distil rounds
def prune_shapes(teacher: Architecture, target: Architecture, rounds: int) -> list[Architecture]:
    """The student of each prune-and-distil round (``--prune-rounds``), the last being ``target``: round r of N
    has each size interpolated geometrically, teacher × (target ÷ teacher)^(r/N), layers and FFN rounded to whole
    numbers, hidden to the nearest multiple of the head count (the heads are kept), each clamped between the
    target's and the previous round's (no size ever grows). A size with room to shrink by a unit (a layer, a head's
    width, an FFN unit) in every round does so, so that rounding never repeats it."""
    shapes, previous = [], teacher
    for r in range(1, rounds + 1):
        sizes = {name: _shrunk(getattr(teacher, name), getattr(target, name), getattr(previous, name), r, rounds,
                               teacher.heads if name == "hidden" else 1) for name in ("layers", "hidden", "intermediate")}
        previous = target if r == rounds else Architecture(**sizes, heads=teacher.heads)
        shapes.append(previous)
    return shapes


def _shrunk(of_teacher: int, of_target: int, before: int, r: int, rounds: int, step: int) -> int:
    """One size of round r of ``rounds`` (:func:`prune_shapes`), in units of ``step``."""
    value = step * _round(of_teacher * (of_target / of_teacher) ** (r / rounds) / step)
    if (of_teacher - of_target) // step >= rounds:  # a unit every round, room left for the rounds after
        value = max(min(value, before - step), of_target + (rounds - r) * step)
    return min(before, max(of_target, value))


def _distinct(teacher: Architecture, shapes: list[Architecture]) -> bool:
    """Every round removes something (one round may keep the teacher's shape, as a one-shot run may)."""
    return len(shapes) == 1 or all(a != b for a, b in zip([teacher, *shapes], shapes, strict=False))


def round_removals(teacher: Architecture, shapes: list[Architecture]) -> list[float]:
    """The share of the encoder parameters each round removes (of the previous round's student's)."""
    return [1 - b.encoder_parameters() / a.encoder_parameters() for a, b in zip([teacher, *shapes], shapes,
                                                                                strict=False)]


def plan_rounds(rounds: int | str, teacher: Architecture, target: Architecture) -> tuple[list[Architecture], str]:
    """The shapes of ``--prune-rounds`` (:func:`prune_shapes`) and how the count was chosen. ``auto``: the fewest
    rounds (up to ``AUTO_MAX_ROUNDS``) in which none removes more than ``MAX_ROUND_REMOVAL`` of the encoder
    parameters, else the count whose largest removal is smallest. A count whose rounds would repeat a shape is
    refused in one sentence naming the most rounds that give distinct shapes."""
    if rounds == "auto":
        largest: dict[int, float] = {}
        for n in range(1, AUTO_MAX_ROUNDS + 1):
            shapes = prune_shapes(teacher, target, n)
            if _distinct(teacher, shapes):
                largest[n] = max(round_removals(teacher, shapes))
                if largest[n] <= MAX_ROUND_REMOVAL + 1e-9:
                    return shapes, (f"auto: the fewest rounds in which none removes more than "
                                    f"{MAX_ROUND_REMOVAL:.0%} of the encoder parameters")
        n = min(largest, key=lambda k: (largest[k], k))
        return prune_shapes(teacher, target, n), (
            f"auto: no count up to {AUTO_MAX_ROUNDS} keeps every round within {MAX_ROUND_REMOVAL:.0%} of the encoder "
            f"parameters; {n} rounds remove at most {largest[n]:.0%} each")
    count = int(rounds)
    # no more rounds than this can each remove something: a layer, a head's width of hidden or an FFN unit
    bound = max(1, teacher.layers - target.layers + (teacher.hidden - target.hidden) // teacher.heads
                + teacher.intermediate - target.intermediate)
    shapes = prune_shapes(teacher, target, count) if count <= bound else []
    if not shapes or not _distinct(teacher, shapes):
        most = next(n for n in range(min(count - 1, bound), 0, -1)
                    if _distinct(teacher, prune_shapes(teacher, target, n)))
        raise PolydistillError(
            f"--prune-rounds {count} cannot give {count} distinct student shapes from the teacher's {teacher.name} to "
            f"the student's {target.name} (two rounds would have the same shape); give at most {most}.")
    return shapes, f"--prune-rounds {count}"


def round_epochs(training, rounds: int) -> float | None:
    """What each round trains when KD runs by ``--epochs`` (no step count): an equal share of them."""
    return training.epochs / rounds if training.max_steps is None else None


def split_steps(training, rounds: int) -> list[Schedule]:
    """``--max-steps S`` (or ``--epochs``) over ``rounds`` rounds: S ÷ N steps each, the remainder to the last
    rounds (an evaluation every quarter of a round unless ``--eval-steps``); by epochs, each round's schedule is
    the one-shot one (:func:`round_epochs` shares the epochs). A count with fewer steps than rounds is refused."""
    if training.max_steps is None:
        return [fixed_schedule(training) for _ in range(rounds)]
    base, extra = divmod(training.max_steps, rounds)
    require(base >= 1, f"--max-steps {training.max_steps} cannot be split over {rounds} prune rounds (each round "
                       f"needs a KD step); give at least {rounds} steps or fewer rounds.")
    return [fixed_schedule(training.model_copy(update={"max_steps": base + (r >= rounds - extra)}))
            for r in range(rounds)]


def total_schedule(parts: list[Schedule]) -> Schedule:
    """The whole run's KD schedule of its rounds' ones: the steps and the estimate summed (None if one is None)."""
    steps, seconds = [p.max_steps for p in parts], [p.estimated_seconds for p in parts]
    return Schedule(max_steps=None if None in steps else sum(s or 0 for s in steps), eval_steps=None,
                    teacher_cache=any(p.teacher_cache for p in parts),
                    estimated_seconds=None if None in seconds else round(sum(s or 0 for s in seconds), 1))


# -------------------------------------------------------------------------------------- schedule
@dataclass
class Schedule:
    """How long KD runs: ``max_steps`` (None: ``epochs``), ``eval_steps``, whether the teacher-output cache
    is used, and (for a budget) the estimate it was fitted with."""

    max_steps: int | None
    eval_steps: int | None
    teacher_cache: bool = True
    estimated_seconds: float | None = None
    basis: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        return cls(**data)


def fixed_schedule(training) -> Schedule:
    """The schedule of ``--epochs`` / ``--max-steps`` (no budget)."""
    eval_steps = training.eval_steps
    if eval_steps is None and training.max_steps:
        eval_steps = max(1, math.ceil(training.max_steps / KD_EVALUATIONS))
    return Schedule(max_steps=training.max_steps, eval_steps=eval_steps)


def fit_schedule(budget_minutes: float, timing: dict[str, float], n_train: int, n_dev: int, training,
                 arch_name: str, rounds: int = 1) -> Schedule:
    """The number of KD steps that fits ``budget_minutes`` (the KD stage: training and its dev evaluations), or,
    over ``rounds`` prune-and-distil rounds, one round's equal share of it (``timing``: that round's student).

    A KD step is taken as ``KD_STEP_FACTOR × (student step + teacher forward)`` of the measured times (an
    upper bound: with the teacher-output cache a step costs about a student step); the dev split is
    evaluated ``KD_EVALUATIONS`` times plus once at the end; ``BUDGET_SAFETY`` of the budget is kept free.
    The teacher cache is used only when the steps cover at least one epoch (before that it cannot pay)."""
    per_step = KD_STEP_FACTOR * (timing["student_step_s"] + timing["teacher_forward_s"])
    per_eval = n_dev * timing["student_forward_s"] / timing["batch_size"]
    evaluations = KD_EVALUATIONS + 1
    usable = budget_minutes / rounds * 60 * (1 - BUDGET_SAFETY)
    steps = int((usable - evaluations * per_eval) // per_step)
    if steps < 1:
        need = rounds * (per_step + evaluations * per_eval) / (1 - BUDGET_SAFETY) / 60
        share = f" over {rounds} prune rounds" if rounds > 1 else ""
        raise PolydistillError(
            f"--budget-minutes {budget_minutes:g}{share} leaves no time for KD: one step of the {arch_name} student "
            f"takes about {per_step:.2f} s and each of the {evaluations} dev evaluations about {per_eval:.1f} s; give "
            f"at least {math.ceil(need * 10) / 10:g} minutes or lower --max-dev-per-language.")
    batch = training.batch_size * training.grad_accum
    eval_steps = training.eval_steps or max(1, math.ceil(steps / KD_EVALUATIONS))
    basis = {**timing, "kd_step_s": round(per_step, 4), "dev_evaluation_s": round(per_eval, 3),
             "evaluations": evaluations, "usable_s": round(usable, 1), "train_examples": n_train,
             "dev_examples": n_dev, "epochs": round(steps * batch / max(1, n_train), 3)}
    return Schedule(max_steps=steps, eval_steps=eval_steps, teacher_cache=steps * batch >= n_train,
                    estimated_seconds=round(steps * per_step + evaluations * per_eval, 1), basis=basis)


# ----------------------------------------------------------------------------------- fingerprint
def teacher_identity(teacher: str) -> dict[str, Any]:
    """What identifies the teacher cheaply: its config and, per weight file, size and a hash of the first and
    last MiB (a hub id is its own identity)."""
    path = Path(teacher).expanduser()
    if not path.is_dir():
        return {"id": teacher}
    digest = hashlib.blake2b(digest_size=16)
    for name in ("config.json", "tokenizer.json"):
        if (path / name).is_file():
            digest.update((path / name).read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}|{size}|".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(2**20))
            handle.seek(max(0, size - 2**20))
            digest.update(handle.read(2**20))
    return {"path": str(path.resolve()), "digest": digest.hexdigest()}


def fingerprint(settings: CompressSettings, teacher: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps({"version": FINGERPRINT_VERSION, "settings": settings.identity(),
                                  "teacher": teacher, "data": data}, default=str))


__all__ = ["Architecture", "CompressSettings", "CompressTraining", "DEFAULT_COVERAGE", "DEFAULT_SIZE", "SIZES",
           "STAGES", "Schedule", "at_default", "candidate_architectures", "check_architecture", "choose_candidate",
           "declared", "fingerprint", "fit_schedule", "fixed_schedule", "plan_rounds", "preset", "prune_shapes",
           "requested_architecture", "round_epochs", "round_removals", "settings_identity", "split_steps",
           "stage_fields", "teacher_architecture", "teacher_identity", "total_schedule", "used_by"]

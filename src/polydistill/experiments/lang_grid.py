"""Language-specific students as grid cells (Singh, De Clercq & Lefever 2023, "Eliquare"): the config section
``language_students:`` and its expansion.

With the section set, a grid is one block of cells per (teacher, dataset, language) of ``languages``:

* the **teacher** fine-tuned on that language's task data (train split of that language only), evaluated on that
  language's test split (the eval group is named by the language code);
* a **language-specific student** per named ``variants`` entry: ``lm-distill`` of the pretrained teacher (the
  teacher's ``base``, else its ``model``) into ``layers`` layers on that language's unlabelled corpus with the
  DistilBERT triplet loss, optionally with VocabReduce before (``vocab: pre``, applied to the teacher) or after
  (``vocab: post``, applied to the distilled student) the distillation, then fine-tuned on the task like any
  student (``student_training``); init ``lm-distill``, its variant in the ``lm`` row dimension;
* the baselines named in ``baselines``: ``multilingual`` — the paper's distilmBERT row: the same weight-copied
  student of the pretrained teacher (init ``from-base``, same layers and layer map) fine-tuned without the
  language-specific distillation; ``privileged`` — the Privileged Students path: the copy of the fine-tuned
  teacher trained with task KD from it (init ``from-teacher`` + KD, the grid's ``kd``).

The corpus of a language is the *inputs* of ``corpus.splits`` of ``corpus.dataset`` in that language (never the
test split, which the cells are scored on; never labels). The distillation of a (language, variant) is run once
and shared by both tasks, every fine-tuning seed and every grid of the work dir (``lm_seed``); ``post`` shares
the distillation of the same settings without reduction. How the cells run: :mod:`polydistill.experiments.lang_cells`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from polydistill.distill.settings import Training, with_defaults
from polydistill.steps import digest

if TYPE_CHECKING:  # a run-time subclass with other defaults; to a type checker, its base
    from polydistill.experiments.schema import ExperimentConfig

    LMTraining = Training
else:  # lm-distill's own defaults (polydistill.distill.settings), as a grid section
    LMTraining = with_defaults(Training, "LMTraining", learning_rate=5e-4, warmup_ratio=0.05, batch_size=16,
                               eval_steps=200, logging_steps=10)

Vocab = Literal["none", "pre", "post"]
Baseline = Literal["multilingual", "privileged"]
LM_INIT = "lm-distill"  # the init of a language-specific student's run spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LMVariant(_Strict):
    """One language-specific student recipe: where VocabReduce goes and the triplet loss."""

    vocab: Vocab = Field("none", description="none | pre (reduce the teacher, then distil) | post (distil, then "
                                             "reduce the student)")
    alpha_ce: float = Field(5.0, ge=0, allow_inf_nan=False, description="soft-target KL·T² weight")
    alpha_mlm: float = Field(2.0, ge=0, allow_inf_nan=False, description="student MLM weight")
    alpha_cos: float = Field(1.0, ge=0, allow_inf_nan=False, description="last-hidden-state cosine weight")
    alpha_mse: float = Field(0.0, ge=0, allow_inf_nan=False, description="last-hidden-state MSE weight")
    temperature: float = Field(2.0, gt=0, allow_inf_nan=False, description="softmax temperature of the soft targets")

    @model_validator(mode="after")
    def _some_term(self) -> LMVariant:
        if not any(w > 0 for w in (self.alpha_ce, self.alpha_mlm, self.alpha_cos, self.alpha_mse)):
            raise ValueError("at least one loss weight (alpha_*) must be > 0")
        return self


class CorpusConfig(_Strict):
    """A language's unlabelled corpus: the inputs of some splits of a dataset, in that language."""

    dataset: str = Field("massive", description="dataset whose inputs are the corpus (massive: the utterances)")
    splits: list[Literal["train", "validation"]] = Field(
        ["train", "validation"], min_length=1,
        description="splits whose inputs are used; never test (the cells are scored on it)")
    max_lines: int | None = Field(None, ge=2, description="use at most the first N lines")


class LanguageStudents(_Strict):
    """The ``language_students:`` section of a grid config."""

    languages: list[str] = Field(..., min_length=1, description="one block of cells per language code")
    layers: int = Field(6, ge=1, description="student depth (language-specific and baseline students)")
    layer_map: str = Field("alternate-first", description="teacher layers copied (2n-1, DistilBERT)")
    baselines: list[Baseline] = Field(["multilingual", "privileged"], description="baseline students per language")
    baseline_languages: dict[Baseline, list[str]] = Field(
        {}, description="a baseline only for these of the languages (default: every language; e.g. the costly "
                        "privileged KD on the low-resource pair only)")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    variants: dict[str, LMVariant] = Field(
        default_factory=lambda: {"triplet": LMVariant()}, min_length=1,
        description="named language-specific student recipes (the lm row dimension)")
    lm_training: LMTraining = Field(default_factory=LMTraining, description="lm-distill's training settings")
    fit_teacher_head_steps: int = Field(300, ge=0, description="head-less teacher (e5): batches of masked tokens its "
                                                                            "MLM head is fitted on first")
    fit_teacher_head_lr: float = Field(1e-3, gt=0)
    vocab_min_sentence_freq: float = Field(0.0005, ge=0, le=1, description="VocabReduce threshold (share of the "
                                                                             "corpus sentences a kept sub-word is in)")
    lm_seed: int | None = Field(None, ge=0, description="seed of every lm-distill (default: the teacher seed)")

    @field_validator("languages")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"languages must be unique, got {values}")
        return values

    @model_validator(mode="after")
    def _baseline_languages(self) -> LanguageStudents:
        for baseline, languages in self.baseline_languages.items():
            if baseline not in self.baselines:
                raise ValueError(f"baseline_languages names {baseline!r}, which is not in baselines {self.baselines}")
            if unknown := sorted(set(languages) - set(self.languages)):
                raise ValueError(f"baseline_languages.{baseline}: {unknown} not in languages {self.languages}")
        return self

    @field_validator("variants")
    @classmethod
    def _names(cls, values: dict[str, LMVariant]) -> dict[str, LMVariant]:
        for name in values:
            if not name or not all(c.isalnum() or c in "-_." for c in name):
                raise ValueError(f"variant name {name!r}: use letters, digits, - _ .")
        return values


class LMCell(_Strict):
    """The language-specific part of a run spec: what its lm-distilled init is made of."""

    variant: str
    language: str
    corpus: CorpusConfig
    layers: int
    layer_map: str
    settings: LMVariant
    training: LMTraining
    fit_teacher_head_steps: int
    fit_teacher_head_lr: float
    vocab_min_sentence_freq: float
    seed: int

    def distill_key(self, teacher: str) -> str:
        """The distillation's identity (shared by the variants and cells it is the same for): the variant's name
        is left out, and ``post`` distils exactly what ``none`` does (its reduction comes afterwards)."""
        data = self.model_dump(mode="json", exclude={"variant"})
        data["settings"]["vocab"] = "pre" if self.settings.vocab == "pre" else "none"
        if self.settings.vocab != "pre":
            data.pop("vocab_min_sentence_freq")
        return digest({"teacher": teacher, **data})

    def corpus_key(self, data_root: str | None) -> str:
        return digest({"language": self.language, "data_root": data_root, **self.corpus.model_dump(mode="json")})


def language_cells(config: ExperimentConfig) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(teacher run-spec fields, [student run-spec fields]) per (teacher, dataset, language); the grid turns
    them into run specs (the students' ``teacher_run`` is their teacher's id)."""
    section = config.language_students
    assert section is not None, "language_cells needs a language_students section"
    teacher_seed = config.teacher_seed if config.teacher_seed is not None else config.seeds[0]
    lm_seed = section.lm_seed if section.lm_seed is not None else teacher_seed
    out = []
    for teacher in config.teachers:
        base = teacher.base or teacher.model
        for dataset in config.datasets:
            t_train, s_train = config.teacher_training, config.student_training
            if dataset.eval_steps:
                t_train = t_train.model_copy(update={"eval_steps": dataset.eval_steps})
                s_train = s_train.model_copy(update={"eval_steps": dataset.eval_steps})
            if dataset.teacher_max_steps:
                t_train = t_train.model_copy(update={"max_steps": dataset.teacher_max_steps})
            for language in section.languages:
                common: dict[str, Any] = dict(
                    teacher=teacher.name, teacher_model=teacher.model, dataset=dataset.name,
                    data_root=config.data_root, train_fraction=dataset.train_fraction,
                    max_eval_per_language=dataset.max_eval_per_language,
                    max_dev_per_language=dataset.max_dev_per_language or dataset.max_eval_per_language,
                    teacher_train_languages=[language], train_languages=[language],
                    eval_languages=[(language, [language])],
                )
                student: dict[str, Any] = dict(kind="student", layers=section.layers, layer_map=section.layer_map,
                                               training=s_train, **common)
                students = []
                for name, variant in section.variants.items():
                    lm = LMCell(variant=name, language=language, corpus=section.corpus, layers=section.layers,
                                layer_map=section.layer_map, settings=variant, training=section.lm_training,
                                fit_teacher_head_steps=section.fit_teacher_head_steps,
                                fit_teacher_head_lr=section.fit_teacher_head_lr,
                                vocab_min_sentence_freq=section.vocab_min_sentence_freq, seed=lm_seed)
                    students += [dict(student, init=LM_INIT, base=base, lm=lm, seed=seed) for seed in config.seeds]
                for baseline in section.baselines:
                    if language not in section.baseline_languages.get(baseline, [language]):
                        continue
                    cell = dict(student, init="from-base", base=base) if baseline == "multilingual" else \
                        dict(student, init="from-teacher", kd=True, kd_settings=config.kd)
                    students += [dict(cell, seed=seed) for seed in config.seeds]
                out.append((dict(common, training=t_train, seed=teacher_seed), students))
    return out

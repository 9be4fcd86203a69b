"""compress, the stages: each composes one existing polydistill stage and writes under
``DIR/stages/<n>-<name>/`` atomically; each is a :class:`polydistill.steps.Step` (:func:`stage_step`), whose
``done.json`` marker records its settings, summary, wall time and output weight digests.

A stage is done exactly when its step is (:meth:`Step.done`: the marker exists with these settings and the
outputs are intact); a re-run skips done stages and redoes the first unfinished one (a model directory that
a kill left without its marker is written again; KD resumes from its checkpoints in ``4-kd/model.work``
through the training core). The runner in ``polydistill.compress`` calls ``run_<name>(ctx)`` looked up by
name here, and finishes the step.

====  ==========  ==============================================================================
 n    stage        what (the stage it uses)
====  ==========  ==============================================================================
 0    plan         the student's sizes (preset / explicit / measured for --target-speedup), the KD
                   schedule (--budget-minutes: measured step time), languages (seen / unseen)
 1    vocab        the teacher's vocabulary reduced to the languages (``vocab.reduce.vocab_reduce``)
 2    depth        the teacher's layers copied by the layer map or importance (``build_student``)
 3    width        hidden / FFN chosen by importance (``build_student``, ``width_select``); skipped
                   when the width is the teacher's
 4    kd           TinyBERT KD (+ ``rel`` when the width changes) (``distill.kd.distill``)
 5    int8         dynamic int8 ONNX export (``export.convert.export_model``)
 6    evaluate     teacher and every intermediate student on one test split (``evaluate_model``)
 7    bench        teacher vs every student, side by side (``bench.measure.bench_models``)
====  ==========  ==============================================================================

With ``--prune-rounds N`` the depth, width and KD stages run once per round (:data:`ROUND_STAGES`), each round
pruning the previous round's KD student and distilling it from the teacher; an earlier round r's are
``<n>-<name>-round-<r>`` (record key ``<name>-round-<r>``), the last round's keep the stages' own names.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from polydistill.architectures import count_parameters, task_of
from polydistill.compress.plan import (
    DEFAULT_COVERAGE,
    STAGES,
    Architecture,
    CompressSettings,
    Schedule,
    at_default,
    candidate_architectures,
    choose_candidate,
    declared,
    fit_schedule,
    plan_rounds,
    preset,
    requested_architecture,
    round_epochs,
    round_removals,
    settings_identity,
    split_steps,
    stage_fields,
    teacher_architecture,
    total_schedule,
)
from polydistill.data.types import TaskData
from polydistill.distill.run import RunRecord, step_report_callback
from polydistill.distill.settings import TINYBERT_WEIGHTS, KDSettings, TrainSettings
from polydistill.errors import PolydistillError, require
from polydistill.io import RUN_FILE, atomic_write_json, read_record
from polydistill.steps import MARKER, Step
from polydistill.student.build import build_student

MODEL = "model"  # the model directory inside a stage folder
ROUND_STAGES = ("depth", "width", "kd")  # run once per prune-and-distil round (--prune-rounds), in this order
# the models compared in evaluate / bench, in pipeline order, with the stage that made them
MODELS = (("teacher", None), ("vocab", "vocab"), ("depth", "depth"), ("width", "width"), ("kd", "kd"),
          ("int8", "int8"))
MODEL_TITLES = {"teacher": "teacher", "vocab": "after vocab reduction", "depth": "after depth copy",
                "width": "after width selection", "kd": "after KD", "int8": "after int8"}


@dataclass
class Context:
    """What every stage reads: settings, the output root, the teacher, the data, the languages and the
    records of the stages before it; for the depth, width and KD stages, the prune-and-distil round they run
    (``prune_round``; the runner gives each round its own context, :meth:`at_round`)."""

    settings: CompressSettings
    root: Path
    teacher_config: Any
    train: TaskData  # KD languages, --fraction applied, dev capped
    evaluation: TaskData  # KD + unseen languages, test split capped
    kd_languages: list[str]
    unseen: list[str]
    seen: list[str]  # the teacher's training languages (its run.json), else the KD languages
    notes: list[str] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)  # done markers by stage (key)
    say: Callable[[str], None] = lambda message: None
    on_step: Callable[[int, int], None] | None = None  # KD's optimiser steps (step, max steps), for the display
    unlabelled: Any = None  # --unlabelled-data: extra KD inputs, labels IGNORE_INDEX (a datasets.Dataset)
    prune_round: int = 0  # the round (1-based) of the depth, width and KD stages; 0: the last round's outputs

    def key(self, name: str) -> str:
        """The record key and folder name of stage ``name``: an earlier prune-and-distil round's depth, width and KD
        are ``<name>-round-<r>``; the last round's (a one-round run's) keep the stage's name."""
        if name in ROUND_STAGES and 0 < self.prune_round < self.round_count:
            return f"{name}-round-{self.prune_round}"
        return name

    def stage_dir(self, name: str) -> Path:
        return self.root / "stages" / f"{STAGES.index(name)}-{self.key(name)}"

    def model_dir(self, name: str) -> Path:
        return self.stage_dir(name) / MODEL

    def record(self, name: str) -> dict[str, Any]:
        """The summary of stage ``name`` in this context's round."""
        return self.records[self.key(name)]["summary"]

    def at_round(self, prune_round: int) -> Context:
        """This context for the depth, width and KD stages of round ``prune_round`` (records and notes shared)."""
        return replace(self, prune_round=prune_round)

    @property
    def plan(self) -> dict[str, Any]:
        return self.records["plan"]["summary"]

    @property
    def rounds(self) -> list[dict[str, Any]]:
        """Each prune-and-distil round's student (``architecture``) and KD schedule (``schedule``, ``epochs``
        when KD runs by epochs) as the plan made them; one round (the plan's student) without ``--prune-rounds``."""
        return self.plan.get("rounds") or [{"architecture": self.plan["architecture"],
                                            "schedule": self.plan["schedule"]}]

    @property
    def round_count(self) -> int:
        return len(self.rounds)

    @property
    def current_round(self) -> int:
        """This context's round (1-based); outside the rounds, the last."""
        return self.prune_round or self.round_count

    def round_plan(self, prune_round: int | None = None) -> dict[str, Any]:
        """This round's (or round ``prune_round``'s) entry of :attr:`rounds`."""
        return self.rounds[(prune_round or self.current_round) - 1]

    @property
    def architecture(self) -> Architecture:
        """The student of this round (the final student outside the rounds)."""
        return Architecture.from_dict(self.round_plan()["architecture"])

    @property
    def schedule(self) -> Schedule:
        return Schedule.from_dict(self.round_plan()["schedule"])

    @property
    def source_architecture(self) -> Architecture:
        """What this round prunes: the teacher's shape in the first round, the previous round's student after."""
        if self.current_round == 1:
            return teacher_architecture(self.teacher_config)
        return Architecture.from_dict(self.round_plan(self.current_round - 1)["architecture"])

    def source_dir(self) -> Path:
        """The model this round's depth and width stages copy: the vocabulary-reduced teacher in the first round,
        the previous round's KD student after."""
        r = self.current_round
        return self.model_dir("vocab") if r == 1 else self.at_round(r - 1).model_dir("kd")

    @property
    def width_changes(self) -> bool:
        """This round's student is narrower than the teacher (KD's relation term is on by default)."""
        return self.architecture.changes_width(teacher_architecture(self.teacher_config))

    @property
    def heads_change(self) -> bool:
        """This round's student keeps fewer heads than the teacher (KD's attention-map term is off by default)."""
        return self.architecture.changes_heads(teacher_architecture(self.teacher_config))

    @property
    def width_selects(self) -> bool:
        """This round's width stage runs: its student is narrower than what the round prunes."""
        return self.architecture.changes_width(self.source_architecture)

    def student_dir(self) -> Path:
        """The student KD starts from: the width copy, or the depth copy when the round keeps the width."""
        return self.model_dir("width") if self.width_selects else self.model_dir("depth")

    def models(self) -> list[tuple[str, Path]]:
        """(name, directory) of the teacher and of every intermediate student (of the last round), in pipeline
        order."""
        out = []
        for name, stage in MODELS:
            if name == "width" and not self.width_selects:
                continue
            out.append((name, Path(self.settings.teacher) if stage is None else self.model_dir(stage)))
        return out


# -------------------------------------------------------------------------------------------- steps
def stage_settings(ctx: Context, name: str) -> dict[str, Any]:
    """The settings that decide a stage's output (its step's identity, recorded in its marker): the fields that
    declare the stage (``CompressSettings``, ``used_by``), and what the stage fixes itself."""
    values, model = ctx.settings.model_dump(mode="json"), type(ctx.settings)
    decide_nothing = {k for k, rule in declared(model, "fingerprint").items() if rule is False}  # e.g. a cache budget
    newer = {k for k, rule in declared(model, "recorded").items()  # added after records were committed
             if rule == "unless-default" and at_default(model, k, values[k])}
    out = {key: values[key] for key in stage_fields(name, model) if key not in decide_nothing | newer}
    if name == "int8" and out.pop("runtime") == "onnx-int8-unfused":  # as recorded before --runtime existed
        out["quantize"] = "int8 (dynamic, per channel)"
    elif name == "int8":
        out["runtime"] = ctx.settings.runtime
    if name == "evaluate":
        out.update(split="test", max_length=values["training"]["max_length"])
    return out


def stage_step(ctx: Context, name: str) -> Step:
    """The stage ``name`` as a :class:`polydistill.steps.Step`: ``DIR/stages/<n>-<name>/``, its settings
    (fingerprinted by the settings' one rule, :func:`settings_identity`: a setting added since a marker was
    written, at its default, is no difference), its model directory (none for plan, evaluate, bench and a
    skipped width stage) and the records the report reads back through their schemas."""
    from polydistill.compress.records import Bench, Evaluation

    outputs: tuple[Path, ...] = ()
    if name in ("vocab", "depth", "kd", "int8") or (name == "width" and ctx.width_selects):
        outputs = (ctx.model_dir(name),)
    records: tuple[tuple[Path, Any], ...] = ()
    if name == "evaluate":
        records = tuple((evaluation_file(ctx, title), Evaluation) for title, _ in ctx.models())
    elif name == "bench":
        records = ((ctx.stage_dir("bench") / "bench.json", Bench),)
    model = type(ctx.settings)
    settings, extra = stage_settings(ctx, name), {"index": STAGES.index(name)}
    if name in ROUND_STAGES and ctx.round_count > 1:  # which round of how many (a one-round run records none)
        extra["round"] = settings["prune_round"] = ctx.prune_round
        settings["prune_rounds"] = ctx.round_count
    return Step(name=ctx.key(name), folder=ctx.stage_dir(name), settings=settings, outputs=outputs,
                records=records, identify=lambda values: settings_identity(values, model), extra=extra)


# --------------------------------------------------------------------------------------------- plan
def run_plan(ctx: Context) -> dict[str, Any]:
    """The student's sizes and the KD schedule, decided before anything is trained."""
    from polydistill.compress.measure import measure_candidates, measure_step

    settings, teacher = ctx.settings, teacher_architecture(ctx.teacher_config)
    record: dict[str, Any] = {"teacher": teacher.to_dict(),
                              "presets": {size: preset(size, teacher).to_dict() for size in ("tiny", "small", "base")},
                              "languages": {"kd": ctx.kd_languages, "unseen": ctx.unseen, "seen": ctx.seen}}
    if settings.target_speedup is not None:
        candidates = candidate_architectures(settings, teacher)
        work = Path(tempfile.mkdtemp(dir=ctx.root.parent, prefix=f".{ctx.root.name}.candidates.", suffix=".tmp"))
        try:
            ctx.say(f"measuring {len(candidates)} candidate students (random weights, {settings.speedup_on}) "
                    "against the teacher")
            measured = measure_candidates(settings, ctx.teacher_config, candidates, work, on_step=ctx.say)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        limit = None
        if settings.target_params is not None:
            limit = _parameter_limit(ctx, measured, record)
        chosen = choose_candidate(measured, settings.target_speedup, limit)
        arch = Architecture.from_dict(chosen["architecture"])
        fits = limit is not None and chosen["parameters_after_vocab"] <= limit
        record.update(how=f"the largest candidate whose measured {settings.speedup_on} speed-up reaches "
                          f"{settings.target_speedup:g}×" + (f" and whose parameters fit {settings.target_params:.0%} of "
                                                             "the teacher's" if fits else ""),
                      candidates=measured, measured_speedup=chosen["speedup"])
        if limit is not None and not fits:
            ctx.notes.append(f"no candidate reaching {settings.target_speedup:g}× fits --target-params "
                     f"{settings.target_params:.0%} with the planned vocabulary of {record['planned_vocab']:,} tokens; "
                     "the largest reaching the speed-up was chosen (a lower --vocab-coverage or --wordfreq-words "
                     "shrinks the vocabulary)")
    else:
        arch = requested_architecture(settings, teacher)
        explicit = [k for k in ("layers", "hidden", "intermediate") if getattr(settings, k)]
        how = f"preset {settings.size}" if settings.size else "explicit sizes" if explicit else \
            "preset small (the default)"
        record["how"] = how + (f" with --{', --'.join(explicit)}" if settings.size and explicit else "")
    record["architecture"] = arch.to_dict()
    shapes = [arch]  # each prune-and-distil round's student, the last being the plan's
    if settings.prune_rounds != 1:
        shapes, how = plan_rounds(settings.prune_rounds, teacher, arch)
        record["prune_rounds"] = {"rounds": len(shapes), "how": how}
    if settings.budget_minutes is not None:  # each round gets an equal share, fitted to its own student's step
        n_train = len(ctx.train.splits["train"]) + (len(ctx.unlabelled) if ctx.unlabelled is not None else 0)
        schedules = []
        for i, shape in enumerate(shapes, 1):
            ctx.say(f"measuring a KD step of {shape.name} for the {settings.budget_minutes:g}-minute budget"
                    + (f" (round {i} of {len(shapes)})" if len(shapes) > 1 else ""))
            timing = measure_step(settings, ctx.teacher_config, shape, ctx.train)
            schedules.append(fit_schedule(settings.budget_minutes, timing, n_train,
                                          len(ctx.train.splits["validation"]), settings.training, shape.name,
                                          rounds=len(shapes)))
    else:
        schedules = split_steps(settings.training, len(shapes))
    record["schedule"] = (schedules[0] if len(shapes) == 1 else total_schedule(schedules)).to_dict()
    if len(shapes) > 1:
        epochs = round_epochs(settings.training, len(shapes)) if settings.budget_minutes is None else None
        removed = round_removals(teacher, shapes)
        record["rounds"] = [{"round": i, "architecture": shape.to_dict(), "encoder_parameters":
                             shape.encoder_parameters(), "removed": round(removed[i - 1], 4), "schedule": part.to_dict(),
                             **({"epochs": epochs} if epochs is not None else {})}
                            for i, (shape, part) in enumerate(zip(shapes, schedules, strict=True), 1)]
    cached = [shape for shape, part in zip(shapes, schedules, strict=True) if part.teacher_cache]
    if cached:  # the largest cache a round builds: the first's (the most layers)
        record["teacher_cache_bytes"] = estimated_cache_bytes(ctx, cached[0])
        warn_cache_budget(ctx, record["teacher_cache_bytes"])
    record["notes"] = list(ctx.notes)
    return record


def estimated_cache_bytes(ctx: Context, arch: Architecture) -> int:
    """The teacher-output cache KD will need (``teacher_cache.estimate_bytes``, the rule KD applies): the KD
    training inputs and the unlabelled ones tokenised by the teacher's tokenizer (the reduced vocabulary's
    lengths differ a little), ``arch``'s layers mapped, the KD terms of its width."""
    from polydistill.data.tokenize import fit_max_length, tokenize_task_data
    from polydistill.distill.kd import cache_spec
    from polydistill.distill.teacher_cache import estimate_bytes
    from polydistill.modeling import load_tokenizer

    s, train = ctx.settings, ctx.train
    splits = {"train": train.splits["train"], **({"unlabelled": ctx.unlabelled} if ctx.unlabelled is not None else {})}
    view = TaskData(name=train.name, task=train.task, label_names=train.label_names, languages=train.languages,
                    splits=splits)
    max_length = fit_max_length(s.training.max_length, ctx.teacher_config, note=False)
    tokenized = tokenize_task_data(view, load_tokenizer(s.teacher), max_length=max_length)
    teacher = teacher_architecture(ctx.teacher_config)
    kd = check_kd_weights(s.kd_weights, arch.changes_width(teacher), arch.changes_heads(teacher))
    spec = cache_spec(kd, ctx.teacher_config, list(range(arch.layers)), train.task == "token")
    return estimate_bytes((len(ids) for split in tokenized.values() for ids in split["input_ids"]), spec,
                          kd.teacher_cache_dtype)


def warn_cache_budget(ctx: Context, needed: int) -> None:
    """Say up front (the plan) when KD's teacher-output cache will not fit ``--teacher-cache-gb``."""
    from polydistill.distill.teacher_cache import describe, over_budget

    skipped = over_budget(needed, ctx.settings.teacher_cache_gb)
    if skipped is not None:
        ctx.say(f"warning: {describe(skipped)} (estimated); every KD step will run the teacher unless "
                "--teacher-cache-gb is raised")


def _parameter_limit(ctx: Context, measured: list[dict[str, Any]], record: dict[str, Any]) -> int:
    """``--target-params`` as a bound on the candidates: the vocabulary stage's plan is made now (no weights are
    written) and each candidate's parameters are counted with that vocabulary."""
    from polydistill.compress.measure import parameters_with_vocab
    from polydistill.vocab.reduce import plan_vocab

    sources, heldout, _, target, _ = vocab_target(ctx)
    ctx.say("planning the vocabulary to size the candidates for --target-params")
    assert ctx.settings.target_params is not None  # the bound is asked for only with --target-params
    vocab = plan_vocab(ctx.settings.teacher, sources=sources, heldout=heldout, min_coverage=target).plan.new_size
    for row in measured:
        row["parameters_after_vocab"] = parameters_with_vocab(row, vocab)
    teacher = count_parameters(_meta_model(ctx.teacher_config)).total
    record.update(planned_vocab=vocab, teacher_parameters=teacher)
    return int(ctx.settings.target_params * teacher)


def _meta_model(config):
    """The teacher's architecture, head included, without its weights (for counting parameters)."""
    import torch

    from polydistill.modeling import auto_class

    with torch.device("meta"):
        return auto_class(task_of(config)).from_config(config)


# -------------------------------------------------------------------------------------------- vocab
def _inputs(rows) -> list[str]:
    return list(rows["text"]) if "text" in rows.column_names else [" ".join(t) for t in rows["tokens"]]


def vocab_sources(ctx: Context):
    """Sources and held-out text per language: the KD languages' train inputs (never labels), wordfreq
    where the language has a list; an unseen language's train inputs only when it has no word list.
    Held-out: every language's validation inputs."""
    from polydistill.vocab.sources import (
        HeldoutText,
        TextSource,
        WordFreqSource,
        language_key,
        wordfreq_code,
        wordfreq_languages,
        wordfreq_source,
    )

    settings, data = ctx.settings, ctx.evaluation
    available = wordfreq_languages() if settings.wordfreq else set()
    sources: list[TextSource | WordFreqSource] = []
    heldout: list[HeldoutText] = []
    notes: list[str] = []

    by_split: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "validation"):
        by_split[split] = {}
        if split in data.splits:
            part = data.splits[split]
            for text, lang in zip(_inputs(part), part["language"], strict=True):
                by_split[split].setdefault(lang, []).append(text)

    def rows_of(split: str, code: str) -> list[str]:
        return by_split[split].get(code, [])

    for code in [*ctx.kd_languages, *ctx.unseen]:
        has_list = False
        if settings.wordfreq:
            try:
                wordfreq_code(code, available)
                has_list = True
            except PolydistillError:
                notes.append(f"{code}: wordfreq has no word list for it")
        train = rows_of("train", code)
        if code in ctx.kd_languages or not has_list:
            if train:
                sources.append(TextSource(train, label=code, kind="dataset",
                                          description=f"{data.name} {code} train inputs"))
                if code in ctx.unseen:
                    why = "has no word list" if settings.wordfreq else "gets no word list (--no-wordfreq)"
                    notes.append(f"{code} (unseen) {why}: its vocabulary comes from its train inputs (text only, "
                                 "never labels)")
            elif code in ctx.unseen:
                notes.append(f"{code} (unseen) has neither a word list nor train text: its text keeps only the "
                             "character fallback of the other sources")
        if has_list:
            sources.append(wordfreq_source(code, settings.wordfreq_words))
        held = rows_of("validation", code)
        if held:
            heldout.append(HeldoutText(held, label=code, description=f"{data.name} {code} validation inputs"))
    keys = {language_key(s.label) for s in sources}
    missing = sorted(keys - {language_key(h.label) for h in heldout})
    return sources, heldout, notes, missing


def vocab_target(ctx: Context) -> tuple[list, list, list[str], float | None, str]:
    """The vocabulary stage's sources, held-out texts, notes, coverage target and the rule that set it."""
    from polydistill.vocab.reduce import plan_vocab

    settings = ctx.settings
    sources, heldout, notes, missing = vocab_sources(ctx)
    target, rule = settings.vocab_coverage, "explicit --vocab-coverage"
    if target is not None and missing:
        raise PolydistillError(f"--vocab-coverage needs validation text of every language, and "
                               f"{', '.join(missing)} has none; drop --vocab-coverage (thresholds are used then).")
    if target is None and missing:
        rule = (f"thresholds (task data: sentence freq ≥ 0.0005; word lists: every sub-word of the top "
                f"{settings.wordfreq_words:,} words), since {', '.join(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no validation text to target a coverage on")
    elif target is None:
        from polydistill.vocab.sources import language_key

        target, rule = DEFAULT_COVERAGE, f"default coverage {DEFAULT_COVERAGE:g}"
        reachable = {}  # per language, with its own sources only (as coverage targeting selects)
        for key in dict.fromkeys(language_key(src.label) for src in sources):
            own = [src for src in sources if language_key(src.label) == key]
            held = [h for h in heldout if language_key(h.label) == key]
            reach = plan_vocab(settings.teacher, sources=own, heldout=held, min_sentence_freq=0.0)
            covered = (reach.report["languages"].get(key) or {}).get("token_coverage")
            if covered is not None:
                reachable[key] = covered
        worst = min(reachable.values()) if reachable else 1.0
        if worst < target:
            target = max(1e-4, int(worst * 10_000) / 10_000)
            lowest = min(reachable, key=lambda lang: reachable[lang])
            rule = (f"{target:.2%}: the default {DEFAULT_COVERAGE:g} is out of reach, {lowest} reaches at most "
                    f"{worst:.2%} with these sources")
    return sources, heldout, notes, target, rule


def run_vocab(ctx: Context) -> dict[str, Any]:
    """VocabReduce of the teacher, coverage-targeted on each language's validation inputs."""
    from polydistill.vocab.reduce import vocab_reduce

    settings = ctx.settings
    sources, heldout, notes, target, rule = vocab_target(ctx)
    ctx.say(f"vocabulary: {rule}")
    result = vocab_reduce(settings.teacher, None, ctx.model_dir("vocab"), sources=sources, heldout=heldout,
                          min_coverage=target, overwrite=True)
    rec = result.provenance["vocab_reduction"]
    return {"rule": rule, "min_coverage": target, "notes": notes, "vocab_before": rec["vocab_before"],
            "vocab_after": rec["vocab_after"], "params_before": rec["params_before"],
            "params_after": rec["params_after"], "coverage": rec["coverage"],
            "sources": [{k: s.get(k) for k in ("language", "kind", "description", "selected")} for s in rec["sources"]]}


# -------------------------------------------------------------------------------------- depth, width
def _calibration(ctx: Context, tokenizer):
    from polydistill.student.importance import calibration_from_task_data

    s = ctx.settings
    return calibration_from_task_data(ctx.train, tokenizer, size=s.calibration_size, seed=s.seed,
                                      max_length=s.training.max_length)


def run_depth(ctx: Context) -> dict[str, Any]:
    """The layers this round keeps, copied at full width: from the vocabulary-reduced teacher (the paper's map,
    or importance), or in a later prune-and-distil round from the previous round's student (the same rule on its
    layers; ``teacher_layers`` then names the teacher's layers they descend from, which KD distils towards)."""
    s, arch, source = ctx.settings, ctx.architecture, ctx.source_dir()
    record: dict[str, Any] = {}
    if s.layer_map.strip().lower() == "importance":
        from polydistill.modeling import load_model, load_tokenizer
        from polydistill.student.importance import layer_importance

        model, tokenizer = load_model(source), load_tokenizer(source)
        selection = layer_importance(model, arch.layers, _calibration(ctx, tokenizer))
        record["layer_selection"] = selection.to_dict()
        built = build_student(model, ctx.model_dir("depth"), teacher_layers=selection.layers, layer_map="importance",
                              tokenizer=tokenizer, seed=s.seed, overwrite=True)
    else:
        built = build_student(str(source), ctx.model_dir("depth"), layers=arch.layers, layer_map=s.layer_map,
                              seed=s.seed, overwrite=True)
    return {**record, **_lineage(ctx, built.provenance.teacher_layers), "layer_map": built.provenance.layer_map,
            "parameters": built.provenance.parameters}


def _lineage(ctx: Context, copied: list[int] | None) -> dict[str, Any]:
    """``teacher_layers``: the teacher's layer each student layer descends from; in a later round also
    ``source_layers``, the layers of the previous round's student that were ``copied``."""
    if ctx.current_round == 1 or copied is None:
        return {"teacher_layers": copied}
    before = ctx.at_round(ctx.current_round - 1).record("depth")["teacher_layers"]
    return {"teacher_layers": [before[k] for k in copied], "source_layers": copied}


def run_width(ctx: Context) -> dict[str, Any]:
    """Hidden size and FFN chosen by importance (or uniformly), on the depth stage's layers of the same source
    (the vocabulary-reduced teacher, or the previous round's student)."""
    from polydistill.modeling import load_model, load_tokenizer

    if not ctx.width_selects:
        kept = "the teacher's" if ctx.current_round == 1 else "the previous round's"
        return {"skipped": f"the width is {kept}; KD starts from the depth copy"}
    s, arch, source = ctx.settings, ctx.architecture, ctx.source_dir()
    depth = ctx.record("depth")
    model, tokenizer = load_model(source), load_tokenizer(source)
    calibration = _calibration(ctx, tokenizer) if s.width_select == "importance" else None
    named = depth["layer_map"] == "importance"
    built = build_student(model, ctx.model_dir("width"), layers=arch.layers,
                          layer_map="importance" if named else s.layer_map,
                          teacher_layers=depth.get("source_layers", depth["teacher_layers"]) if named else None,
                          hidden=arch.hidden, intermediate=arch.intermediate, heads=arch.heads,
                          width_select=s.width_select,
                          calibration=calibration, tokenizer=tokenizer, seed=s.seed, overwrite=True)
    width = built.provenance.width or {}
    return {**_lineage(ctx, built.provenance.teacher_layers), "method": width.get("method"),
            "criterion": width.get("criterion"), "hidden": width.get("hidden_size"),
            "intermediate": width.get("intermediate_size"), "heads": width.get("num_heads"),
            "parameters": built.provenance.parameters}


# ----------------------------------------------------------------------------------------------- kd
def check_kd_weights(kd_weights: dict[str, float], width_changes: bool = True, heads_change: bool = False):
    """The KD settings of ``--kd-term`` weights (unknown terms and bad weights are one sentence); compress
    checks them before its first stage. Defaults: TinyBERT's terms, ``rel`` on when the width changes, ``att``
    off when the student keeps fewer heads (its maps are compared head by head; ``rel`` spans head counts)."""
    from pydantic import ValidationError

    require(not (heads_change and kd_weights.get("att", 0) > 0),
            "--kd-term att compares attention maps head by head, but the student keeps fewer heads than the teacher "
            "(--heads); drop att (the relation term rel carries attention across head counts).")
    defaults = {**TINYBERT_WEIGHTS, "rel": 1.0 if width_changes else 0.0, **({"att": 0.0} if heads_change else {})}
    try:
        return KDSettings(weights={**defaults, **kd_weights})
    except ValidationError as err:
        message = err.errors()[0]["msg"].removeprefix("Value error, ").rstrip(".")
        raise PolydistillError(f"Invalid KD weights (--kd-term): {message}.") from None


def kd_settings(ctx: Context, schedule: Schedule):
    s = ctx.settings
    kd = check_kd_weights(s.kd_weights, ctx.width_changes, ctx.heads_change)
    return type(kd)(weights=kd.weights, allow_untrained_teacher=s.allow_untrained_teacher,
                    allow_weak_teacher=s.allow_weak_teacher, teacher_cache=schedule.teacher_cache,
                    teacher_cache_gb=s.teacher_cache_gb)


def kd_cache_record(result, schedule: Schedule) -> dict[str, Any] | None:
    """What the KD run did with the teacher-output cache: the training core's record (run.json ``teacher_cache``:
    built / reused, or skipped with the bytes needed and the budget), or ``{"off": why}`` when the schedule
    switched it off. A KD run finished before (``already_done``) is read back from its run.json."""
    if not schedule.teacher_cache:
        return {"off": "the KD schedule covers under one epoch (the cache cannot pay)"}
    record = result.extra.get("teacher_cache")
    if record is None and result.already_done:
        path = Path(result.output_dir) / RUN_FILE
        record = read_record(path, RunRecord).teacher_cache if path.is_file() else None
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in record.items()} if record else None


def run_kd(ctx: Context) -> dict[str, Any]:
    """TinyBERT KD from the vocabulary-reduced teacher (resumes from its checkpoints after a kill), with the
    unlabelled inputs of ``--unlabelled-data`` in its training set (KD terms only, never CE). In a prune-and-distil
    round: this round's share of the steps (or epochs), every student layer matched with the teacher layer it
    descends from (a later round's provenance names the previous student's layers: KD is given the teacher's,
    ``teacher_layers`` of the round's depth and width records)."""
    from polydistill.distill.kd import distill

    s, schedule, epochs = ctx.settings, ctx.schedule, ctx.round_plan().get("epochs")
    values = {**s.training.model_dump(), "max_steps": schedule.max_steps, "eval_steps": schedule.eval_steps,
              **({"epochs": epochs} if epochs is not None else {})}
    settings = TrainSettings(**values, output_dir=ctx.model_dir("kd"), seed=s.seed, progress=False)
    kd = kd_settings(ctx, schedule)
    if ctx.current_round > 1:
        copied = ctx.record("width" if ctx.width_selects else "depth")["teacher_layers"]
        kd = type(kd)(**{**kd.model_dump(), "layer_map": copied})
    result = distill(str(ctx.model_dir("vocab")), str(ctx.student_dir()), ctx.train, settings, kd,
                     callbacks=step_report_callback(ctx.on_step), unlabelled=ctx.unlabelled)
    unlabelled = None
    if ctx.unlabelled is not None:
        unlabelled = {"source": s.unlabelled_data, "examples": len(ctx.unlabelled), "max": s.unlabelled_max,
                      "languages": sorted(set(ctx.unlabelled["language"]))}
    cache = kd_cache_record(result, schedule)
    notes = []
    if cache and "skipped" in cache:
        from polydistill.distill.teacher_cache import describe

        notes.append(f"KD ran the teacher at every step: {describe(cache)}")
    return {"best_dev_f1": result.best_dev_f1, "global_step": result.global_step,
            "train_seconds": result.train_seconds, "resumed_from": result.resumed_from,
            "weights": kd.active, "teacher_cache": cache, "schedule": schedule.to_dict(),
            "unlabelled": unlabelled, "student": str(ctx.student_dir()), "training": settings.identity(),
            **({"notes": notes} if notes else {})}


def run_int8(ctx: Context) -> dict[str, Any]:
    """The deployable in ``--runtime``: dynamic int8 ONNX by default; ``auto`` times every runtime on this
    machine and keeps the fastest that passes the fidelity gate on the test split."""
    s = ctx.settings
    if s.runtime == "onnx-int8-unfused":  # what compress always shipped (fingerprints of earlier runs unchanged)
        from polydistill.export.convert import export_model

        result = export_model(ctx.model_dir("kd"), ctx.model_dir("int8"), quantize="int8", seed=s.seed,
                              overwrite=True)
    elif s.runtime == "auto":
        from polydistill.bench.select import export_auto

        serve = [(s.bench_batch_size, n) for n in s.bench_lengths] + [(1, min(s.bench_lengths))]  # + latency
        result = export_auto(ctx.model_dir("kd"), ctx.model_dir("int8"), serve=serve, data=ctx.evaluation,
                             seed=s.seed, threads=s.bench_threads, overwrite=True, on_step=ctx.say)
    else:
        from polydistill.export.runtimes import export_runtime

        result = export_runtime(ctx.model_dir("kd"), ctx.model_dir("int8"), s.runtime, seed=s.seed, overwrite=True,
                                calibration_data=ctx.evaluation if s.runtime.endswith("static") else None)
    record = result.record
    summary = {"quantization": record.get("quantization"), "onnx_bytes": record.get("onnx_bytes"),
               "check": record.get("check")}
    if s.runtime != "onnx-int8-unfused":
        chosen = (record.get("selection") or {}).get("chosen", s.runtime)
        summary.update(runtime=chosen, machine=record.get("machine"), selection=record.get("selection"))
    return summary


# ---------------------------------------------------------------------------------- evaluate, bench
def evaluation_file(ctx: Context, name: str) -> Path:
    return ctx.stage_dir("evaluate") / f"{name}.json"


def run_evaluate(ctx: Context) -> dict[str, Any]:
    """Every model on the same (capped) test split; one JSON per model (a re-run skips the finished ones)."""
    from polydistill.evaluate import evaluate_model
    from polydistill.reporting.stats import examples_checksum

    s, out = ctx.settings, {}
    for name, path in ctx.models():
        target = evaluation_file(ctx, name)
        if target.is_file():
            out[name] = str(target)
            continue
        ctx.say(f"evaluating {MODEL_TITLES[name]} ({path})")
        start = time.perf_counter()
        report = evaluate_model(str(path), None, ctx.evaluation, split="test", max_length=s.training.max_length,
                                seen=ctx.seen)
        ex = report.examples
        assert ex is not None  # evaluate_model keeps every example's prediction
        checksums = {lang: examples_checksum([t for t, la in zip(ex.texts, ex.languages, strict=True) if la == lang])
                     for lang in report.languages}
        atomic_write_json(target, {"name": name, "path": str(path), "seconds": round(time.perf_counter() - start, 2),
                                   "report": report.to_dict(),
                                   "examples": {"true": ex.true, "pred": ex.pred, "languages": ex.languages,
                                                "checksums": checksums}})
        out[name] = str(target)
    return {"files": out, "split": "test", "examples": len(ctx.evaluation.splits["test"]),
            "max_test_per_language": s.max_test_per_language}


def run_bench(ctx: Context) -> dict[str, Any]:
    """Speed and size of the teacher and every student, in one interleaved run (ratios vs the teacher)."""
    from polydistill.bench.measure import bench_models
    from polydistill.compress.measure import _restore_threads

    s = ctx.settings
    names, paths = zip(*ctx.models(), strict=True)
    ctx.say(f"timing {', '.join(names)} side by side")
    with _restore_threads():
        report = bench_models(list(paths), names=list(names), lengths=s.bench_lengths, batch_size=s.bench_batch_size,
                              repeats=s.bench_repeats, warmup=1, threads=s.bench_threads, device="cpu")
    path = ctx.stage_dir("bench") / "bench.json"
    atomic_write_json(path, report.to_dict())
    return {"file": str(path), "models": list(names)}


__all__ = ["Context", "MARKER", "MODELS", "MODEL_TITLES", "STAGES", "check_kd_weights", "run_bench", "run_depth",
           "run_evaluate", "run_int8", "run_kd", "run_plan", "run_vocab", "run_width", "stage_settings", "stage_step",
           "vocab_sources"]

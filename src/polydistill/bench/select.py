"""``polydistill export --runtime auto``: the runtime is chosen by measurement on this machine.

Every candidate runtime the machine can run (:func:`polydistill.export.runtimes.plan_candidates`) is
written in its standard form, loaded with its own loader, checked by a **fidelity gate** against the fp32
PyTorch student, and timed side by side with the others in this process (interleaved, as ``polydistill
bench`` times) on the workloads it will serve (``--serve 32x128,1x32``: batch × length). The choice rule
(:func:`choose_runtime`, a pure function of the timings and the gate results) keeps the fastest candidate
that passes the gate; one that fails is never chosen, however fast. Every candidate's timings, its gate
result, the skipped ones with their reasons and the machine profile go into the export record.

The gate (:func:`judge`): argmax agreement with the fp32 student ≥ 99 % (classifiers; per labelled word
for token classifiers) and, where the texts have labels, per-language F1 within 0.5 points of the fp32
student; for a bare encoder, mean hidden-state cosine ≥ 0.99.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polydistill.bench.measure import Case, _make_runner, summarise, time_interleaved
from polydistill.errors import PolydistillError, require
from polydistill.export.convert import CHECK_SENTENCES, TRACE_SENTENCES, ExportResult, prepare_calibration
from polydistill.export.machine import machine_profile
from polydistill.export.runtime import require_runtime
from polydistill.export.runtimes import (
    RUNTIMES,
    SPECS,
    Built,
    CandidateBuilder,
    base_record,
    compare_outputs,
    load_runtime_dir,
    load_source,
    parse_runtimes,
    plan_candidates,
    write_runtime_dir,
)
from polydistill.hub import push_model_dir
from polydistill.io import check_output_dir
from polydistill.student.model_dir import save_model_dir

DEFAULT_SERVE = "32x128,1x32"
MIN_AGREEMENT = 0.99
F1_TOLERANCE = 0.5  # F1 points (0-100)
MIN_COSINE = 0.99
RULE = ("the fastest candidate that passes the fidelity gate; fastest = lowest geometric mean over the workloads "
        "of (its median time ÷ the fastest candidate's median time)")


def parse_serve(text: str) -> list[tuple[int, int]]:
    """``"32x128,1x32"`` → [(batch 32, length 128), (batch 1, length 32)]."""
    out = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        batch, sep, length = part.partition("x")
        if not sep or not batch.strip().isdigit() or not length.strip().isdigit() or int(batch) < 1 or int(length) < 1:
            raise PolydistillError(f"--serve takes batch×length pairs such as 32x128,1x32, got {text!r}.")
        out.append((int(batch), int(length)))
    require(bool(out), f"--serve takes batch×length pairs such as 32x128,1x32, got {text!r}.")
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------------------ the gate


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str  # why it failed ("" when passed)
    agreement: float | None = None  # argmax agreement with the fp32 student (0-1)
    f1: dict[str, float] = field(default_factory=dict)  # per-language F1 of the candidate (0-100)
    f1_delta: dict[str, float] = field(default_factory=dict)  # candidate − fp32 student, F1 points
    mean_cosine: float | None = None  # bare encoders: hidden-state cosine with the fp32 student
    compared: int = 0  # examples (or tokens / words) compared

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, "")} | {"passed": self.passed}


def judge(*, agreement: float | None = None, f1_reference: Mapping[str, float] | None = None,
          f1_candidate: Mapping[str, float] | None = None, mean_cosine: float | None = None, compared: int = 0,
          min_agreement: float = MIN_AGREEMENT, f1_tolerance: float = F1_TOLERANCE,
          min_cosine: float = MIN_COSINE) -> GateResult:
    """The gate as a pure function of measured agreement (0-1), per-language F1 (0-100) of the fp32
    student and the candidate, and hidden-state cosine."""
    reasons = []
    if agreement is not None and agreement < min_agreement:
        reasons.append(f"argmax agreement {100 * agreement:.2f} % < {100 * min_agreement:g} %")
    delta: dict[str, float] = {}
    if f1_reference and f1_candidate is not None:
        delta = {lang: f1_candidate.get(lang, 0.0) - ref for lang, ref in f1_reference.items()}
        off = {lang: d for lang, d in delta.items() if abs(d) > f1_tolerance + 1e-9}
        if off:
            worst = max(off, key=lambda lang: abs(off[lang]))
            reasons.append(f"F1 of {len(off)} language(s) moved more than {f1_tolerance:g} points ({worst}: "
                           f"{off[worst]:+.2f})")
    if mean_cosine is not None and mean_cosine < min_cosine:
        reasons.append(f"mean hidden-state cosine {mean_cosine:.4f} < {min_cosine:g}")
    return GateResult(passed=not reasons, reason="; ".join(reasons), agreement=agreement,
                      f1=dict(f1_candidate or {}), f1_delta=delta, mean_cosine=mean_cosine, compared=compared)


def gate_view(data, examples_per_language: int = 300, seed: int = 0):
    """At most ``examples_per_language`` examples per language of ``data``'s test split (else validation),
    drawn with ``seed``: (the view as a TaskData, its split name)."""
    from datasets import DatasetDict

    from polydistill.data.types import LANGUAGE, TaskData

    split = next((s for s in ("test", "validation") if s in data.splits and len(data.splits[s])), None)
    require(split is not None, f"{data.name} has no test or validation examples to check the runtimes on.")
    ds = data.splits[split].shuffle(seed=seed)
    taken: dict[str, int] = {}
    keep = []
    for i, lang in enumerate(ds[LANGUAGE]):
        if taken.get(lang, 0) < examples_per_language:
            taken[lang] = taken.get(lang, 0) + 1
            keep.append(i)
    view = TaskData(name=data.name, task=data.task, label_names=data.label_names,
                    splits=DatasetDict({split: ds.select(sorted(keep))}), languages=data.languages, source=data.source)
    return view, split


def _flat(rows: list) -> list:
    return [x for row in rows for x in (row if isinstance(row, list) else [row])]


def measure_gates(reference, candidates: Mapping[str, Any], tokenizer, output: str, *, data=None,
                  texts: Sequence[str] | None = None, max_length: int = 128, examples_per_language: int = 300,
                  seed: int = 0, thresholds: Mapping[str, Any] | None = None,
                  on_step: Callable[[str], None] | None = None) -> tuple[dict[str, GateResult], dict[str, Any]]:
    """Gate every candidate (called like a transformers model) against ``reference`` (the fp32 student):
    on ``data``'s labelled test examples when given (classifiers), else on ``texts``."""
    limits: dict[str, Any] = dict(thresholds or {})
    results: dict[str, GateResult] = {}
    if data is not None and output == "logits":
        from polydistill.evaluate import evaluate_model

        view, split = gate_view(data, examples_per_language, seed)
        ref = evaluate_model(reference, tokenizer, view, split, random_runs=1, max_length=max_length)
        assert ref.examples is not None
        ref_pred = _flat(ref.examples.pred)
        f1_ref = {lang: 100 * s["f1"] for lang, s in ref.per_language.items()}
        for name, model in candidates.items():
            if on_step:
                on_step(name)
            got = evaluate_model(model, tokenizer, view, split, random_runs=1, max_length=max_length)
            assert got.examples is not None
            pred = _flat(got.examples.pred)
            agreement = sum(a == b for a, b in zip(ref_pred, pred, strict=True)) / max(1, len(ref_pred))
            results[name] = judge(agreement=agreement, f1_reference=f1_ref,
                                  f1_candidate={lang: 100 * s["f1"] for lang, s in got.per_language.items()},
                                  compared=len(ref_pred), **limits)
        counts = {lang: s.get("support", s.get("tokens")) for lang, s in ref.per_language.items()}
        record = {"data": data.name, "split": split, "examples_per_language": counts, "labels": True,
                  "reference": "fp32 PyTorch student", "reference_f1": f1_ref}
        return results, record
    if data is not None:
        from polydistill.data.types import TEXT, TOKENS

        view, split = gate_view(data, examples_per_language, seed)
        ds = view.splits[split]
        texts = list(ds[TEXT]) if TEXT in ds.column_names else [" ".join(words) for words in ds[TOKENS]]
        source = f"{data.name} {split} ({len(texts)} texts)"
    else:
        source = "given texts" if texts else "the built-in check sentences (pass --dataset for a real-data gate)"
        texts = list(texts or [*CHECK_SENTENCES, *TRACE_SENTENCES])
    for name, model in candidates.items():
        if on_step:
            on_step(name)
        check = compare_outputs(reference, model, tokenizer, texts, output, max_length=max_length)
        if output == "logits":
            results[name] = judge(agreement=check["argmax_agreement"], compared=check["compared"], **limits)
        else:
            results[name] = judge(mean_cosine=check["mean_cosine"], compared=check["compared"], **limits)
    return results, {"texts": source, "labels": False, "reference": "fp32 PyTorch student"}


# ------------------------------------------------------------------------------------ the choice


@dataclass(frozen=True)
class Choice:
    runtime: str
    scores: dict[str, float]  # geometric mean over workloads of time ÷ the fastest candidate's time
    fastest: dict[str, str]  # workload → the fastest candidate, gate or not
    rejected: dict[str, str]  # candidate → why it was not chosen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _passed(gate: GateResult | bool) -> bool:
    return gate if isinstance(gate, bool) else gate.passed


def choose_runtime(timings: Mapping[str, Mapping[str, float]], gates: Mapping[str, GateResult | bool],
                   order: Sequence[str] = RUNTIMES) -> Choice:
    """The fastest candidate that passes its gate (pure). ``timings[candidate][workload]``: median seconds;
    ``gates[candidate]``: its gate result. A candidate's score is the geometric mean over the workloads of its
    time ÷ the fastest time on that workload (1.0: fastest everywhere); the lowest score among those that
    passed wins, ties going to the earlier runtime of ``order``. A candidate without a gate result or without
    a timing of every workload is not chosen."""
    workloads = sorted({w for by in timings.values() for w in by})
    require(bool(workloads), "No candidate runtime was timed.")
    complete = {name: by for name, by in timings.items() if all(w in by and by[w] > 0 for w in workloads)}
    best = {w: min(by[w] for by in complete.values()) for w in workloads} if complete else {}
    scores = {name: math.exp(sum(math.log(by[w] / best[w]) for w in workloads) / len(workloads))
              for name, by in complete.items()}
    fastest = {w: min(complete, key=lambda n: complete[n][w]) for w in workloads} if complete else {}
    rejected: dict[str, str] = {}
    for name in timings:
        gate = gates.get(name)
        if name not in complete:
            rejected[name] = "not timed on every workload"
        elif gate is None:
            rejected[name] = "no gate result"
        elif not _passed(gate):
            rejected[name] = f"failed the fidelity gate ({gate.reason if isinstance(gate, GateResult) else 'failed'})"
    eligible = [name for name in scores if name not in rejected]
    if not eligible:
        raise PolydistillError("No candidate runtime passed the fidelity gate ("
                               + "; ".join(f"{n}: {r}" for n, r in rejected.items()) + "); include torch-fp32.")
    rank = {name: i for i, name in enumerate(order)}
    chosen = min(eligible, key=lambda n: (round(scores[n], 9), rank.get(n, len(rank))))
    for name in eligible:
        if name != chosen:
            rejected[name] = f"slower ({scores[name]:.2f}× the fastest vs {scores[chosen]:.2f}×)"
    return Choice(runtime=chosen, scores=scores, fastest=fastest, rejected=rejected)


# ------------------------------------------------------------------------------------ measuring


def time_candidates(models: Mapping[str, Any], serve: Sequence[tuple[int, int]], *, repeats: int = 5,
                    warmup: int = 1, clocks=None, on_step=None) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Median wall seconds of every candidate on every workload (batch, length), interleaved in one
    process: ({candidate: {"b32/L128": s}}, the raw timings by case key)."""
    cases = [Case("cpu", length, batch) for batch, length in serve]
    runners = {name: _make_runner({"cpu": model}) for name, model in models.items()}
    try:
        samples = time_interleaved(runners, cases, repeats, warmup, clocks=clocks, on_step=on_step)
    except RuntimeError as err:
        raise PolydistillError(f"A runtime failed on the timing inputs: {str(err).splitlines()[0][:200]}") from err
    medians: dict[str, dict[str, float]] = {}
    raw: dict[str, Any] = {}
    for name in models:
        summary = summarise(samples[name])
        medians[name] = {workload_key(t.case.batch_size, t.case.seq_len): t.median_s("wall") for t in summary.values()}
        raw[name] = {workload_key(t.case.batch_size, t.case.seq_len): t.to_dict() for t in summary.values()}
    return medians, raw


def workload_key(batch: int, length: int) -> str:
    return f"b{batch}/L{length}"


def _build_candidates(builder: CandidateBuilder, names: Sequence[str], scratch: Path,
                      step: Callable[[str], None]) -> tuple[dict[str, Built], dict[str, str]]:
    """(the candidates built under ``scratch``, the reason each other one could not be built); torch-fp32 must build."""
    built: dict[str, Built] = {}
    unbuilt: dict[str, str] = {}
    for name in names:
        step(f"building {name}")
        try:
            built[name] = Built(name, scratch / name, builder.build(name, scratch / name))
        except Exception as err:  # a candidate that cannot be built is skipped with its reason, not fatal
            if name == "torch-fp32":
                raise
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            unbuilt[name] = f"could not be built ({detail})"
    return built, unbuilt


def _candidates_record(built: Mapping[str, Built], timings: Mapping[str, Mapping[str, float]],
                       gates: Mapping[str, GateResult], choice: Choice) -> dict[str, dict[str, Any]]:
    """Each built candidate's record: its timings, score, gate result, size, whether chosen (else why not)."""
    return {name: {"median_s": timings[name], "score": choice.scores.get(name),
                   "gate": gates[name].to_dict(), "bytes": b.record.get("bytes"),
                   "chosen": name == choice.runtime,
                   **({"why_not": choice.rejected[name]} if name in choice.rejected else {}),
                   **({"fusion": b.record["fusion"]["fused_operators"]} if b.record.get("fusion") else {})}
            for name, b in built.items()}


def export_auto(source: str | os.PathLike, out: str | os.PathLike, *, serve: str | Sequence[tuple[int, int]] = DEFAULT_SERVE,
                candidates: Sequence[str] | None = None, data=None, texts: Sequence[str] | None = None,
                gate_examples: int = 300, min_agreement: float = MIN_AGREEMENT, f1_tolerance: float = F1_TOLERANCE,
                min_cosine: float = MIN_COSINE, calibration_examples: int = 256, calibration_max_length: int = 128,
                repeats: int = 5, warmup: int = 1, threads: int | None = None, seed: int = 0, opset: int = 17,
                exporter: str = "torchscript", per_channel: bool = True, overwrite: bool = False,
                push_to_hub: str | None = None, token: str | None = None,
                on_step: Callable[[str], None] | None = None):
    """Write ``source`` to ``out`` in the runtime that serves ``serve`` fastest on this machine among those
    that pass the fidelity gate (on ``data``'s labelled test examples, else on ``texts``); ``data`` also
    calibrates the static-int8 candidates. Returns an ``ExportResult``; the record holds every candidate."""
    import torch

    workloads = parse_serve(serve) if isinstance(serve, str) else list(serve)
    require(bool(workloads), "--serve needs at least one batch×length pair.")
    require(gate_examples >= 1, f"--gate-examples must be at least 1, got {gate_examples}.")
    require(repeats >= 1, f"--repeats must be at least 1, got {repeats}.")
    requested = parse_runtimes(candidates) if candidates else None
    if threads is not None:
        require(threads >= 1, f"threads must be at least 1, got {threads}.")
        torch.set_num_threads(threads)
    profile = machine_profile()
    names, skipped = plan_candidates(profile, calibration=data is not None, requested=requested)
    if any(SPECS[n].format != "safetensors" for n in names):
        require_runtime()
    check_output_dir(out, overwrite)
    src = load_source(source)
    too_long = [length for _, length in workloads if length > src.limit]
    if too_long:
        raise PolydistillError(f"{source} accepts at most {src.limit} tokens but --serve asks for {too_long[0]}.")
    calibration = None
    if data is not None and any(SPECS[n].calibrated for n in names):
        calibration = prepare_calibration(data, src.tokenizer, src.names, calibration_examples,
                                          min(calibration_max_length, src.limit), seed)
    step = on_step or (lambda _: None)
    with save_model_dir(out, "export", overwrite=overwrite, lock=True,
                        expected_bytes=4 * (src.weights_bytes or 0)) as target:
        scratch = target.path / ".candidates"
        builder = CandidateBuilder(src, scratch, calibration=calibration, opset=opset, exporter=exporter,
                                   per_channel=per_channel)
        built, unbuilt = _build_candidates(builder, names, scratch, step)
        skipped.update(unbuilt)
        require(bool(built), "No runtime candidate could be built; " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        loaded = {name: load_runtime_dir(b.path, threads=profile.threads) for name, b in built.items()}
        gates, gate_record = measure_gates(
            src.model, loaded, src.tokenizer, src.output, data=data, texts=texts, max_length=src.limit,
            examples_per_language=gate_examples, seed=seed, on_step=lambda n: step(f"gating {n}"),
            thresholds={"min_agreement": min_agreement, "f1_tolerance": f1_tolerance, "min_cosine": min_cosine})
        timings, raw = time_candidates(loaded, workloads, repeats=repeats, warmup=warmup,
                                       on_step=lambda phase, case, name: step(f"timing {name} {case.key}"))
        choice = choose_runtime(timings, gates)
        chosen = built[choice.runtime]
        check = compare_outputs(src.model, loaded[choice.runtime], src.tokenizer, CHECK_SENTENCES, src.output,
                                max_length=src.limit)
        loaded.clear()
        selection = {
            "rule": RULE,
            "serve": [workload_key(b, n) for b, n in workloads],
            "threads": profile.threads,
            "repeats": repeats,
            "warmup": warmup,
            "gate": {**gate_record, "min_agreement": min_agreement, "f1_tolerance_points": f1_tolerance,
                     "min_cosine": min_cosine},
            "chosen": choice.runtime,
            "candidates": _candidates_record(built, timings, gates, choice),
            "fastest_per_workload": choice.fastest,
            "skipped": skipped,
            "timings": raw,
        }
        record = {**base_record(src, chosen), "check": check, "machine": profile.to_dict(), "selection": selection}
        write_runtime_dir(target, src, chosen, record)
        shutil.rmtree(scratch)
    if push_to_hub:
        push_model_dir(out, push_to_hub, token=token)
    return ExportResult(Path(out), record)

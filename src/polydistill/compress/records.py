"""The shapes of the files a compress run reads back (through :func:`polydistill.io.read_record`): the
fingerprint ``compress.json``, the evaluate stage's per-model files, the bench stage's ``bench.json`` and the
finished run's ``report.json`` (``compress-seeds``); each stage's ``done.json`` is a step marker
(:class:`polydistill.steps.StepMarker`). A file hand-edited into another shape (a list, a string where a
number is, a missing key) is one sentence naming the file and the field, never a traceback further on. Only the
fields that are read back are typed; the rest is kept."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict

_OPEN = ConfigDict(extra="allow")  # records keep every field they were written with


@with_config(_OPEN)
class CompressRecord(TypedDict):
    """``DIR/compress.json``."""

    fingerprint: dict[str, Any]


@with_config(_OPEN)
class EvaluationExamples(TypedDict):
    true: list[Any]
    pred: list[Any]
    languages: list[str]
    checksums: dict[str, str]


@with_config(_OPEN)
class EvaluationReport(TypedDict):
    task: str
    label_names: list[str]
    languages: NotRequired[list[str]]  # the report card reads these; compress-seeds only the two above
    per_language: NotRequired[dict[str, dict[str, Any]]]


@with_config(_OPEN)
class Evaluation(TypedDict):
    """``DIR/stages/<n>-evaluate/<model>.json``."""

    name: str
    report: EvaluationReport
    examples: EvaluationExamples
    seconds: NotRequired[float | None]


@with_config(_OPEN)
class BenchModel(TypedDict):
    name: str
    params: dict[str, Any]
    timings: Any


@with_config(_OPEN)
class Bench(TypedDict):
    """``DIR/stages/<n>-bench/bench.json``."""

    settings: dict[str, Any]
    models: list[BenchModel]
    ratios: dict[str, dict[str, Any]]


@with_config(_OPEN)
class ReportQuality(TypedDict):
    groups: dict[str, list[str]]


@with_config(_OPEN)
class Report(TypedDict):
    """``DIR/report.json``, as ``compress-seeds`` reads it."""

    settings: dict[str, Any]
    quality: ReportQuality
    dataset: NotRequired[str | None]
    architecture: NotRequired[dict[str, Any] | None]

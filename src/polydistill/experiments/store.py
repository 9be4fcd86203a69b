"""The results store of a grid: one JSON per finished run, written atomically.

Layout of a work dir::

    grids/<name>.json         resolved config and run ids of each grid run here (grids may share runs)
    results/<run_id>.json     one finished run (spec, metrics, loss curve, wall time, versions)
    failed/<run_id>.json      why a run stopped (NaN, a refused input); removed when it later finishes
    runs/<run_id>/            models and Trainer checkpoints of runs in progress or kept
    report/                   written by ``grid report``

A result file exists if and only if its run finished: that is what makes re-running safe. A cell is a
:class:`polydistill.steps.Step` (:meth:`ResultStore.cell_step`) whose done marker is its result file, read through
:class:`ResultRecord`, recording its identity as the run id (the one rule that fingerprints a cell's spec,
:attr:`polydistill.experiments.grid.RunSpec.run_id`); the file's format is the result's own.

A result's ``metrics.predictions`` holds the gold and predicted label of every test example of
every eval group (see :func:`encode_predictions`), so that two runs can be compared example by
example (:mod:`polydistill.reporting.stats`).
"""

from __future__ import annotations

import base64
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict

from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_json, read_record
from polydistill.reporting.stats import LanguagePredictions, examples_checksum
from polydistill.steps import Step


@with_config(ConfigDict(extra="allow"))
class GridRun(TypedDict):
    run_id: str


@with_config(ConfigDict(extra="allow"))
class GridRecord(TypedDict):
    """``grids/<name>.json``: the runs of one grid (read back through :func:`polydistill.io.read_record`)."""

    runs: list[GridRun]


# The shape of ``results/<run_id>.json`` as the report reads it back (through :func:`polydistill.io.read_record`):
# a result hand-edited into another shape (a list, a string where a number is, a missing key) is one sentence
# naming the file and the field, never a traceback in a table further on. Only the fields that are read back are
# typed; every other field is kept as written. Strict: "0.5" is not a number (an int is taken where a float is).
_RESULT = ConfigDict(extra="allow", strict=True)
Languages = str | list[str]
Curve = list[list[int | float]]  # [step, value] pairs


@with_config(_RESULT)
class ResultSpec(TypedDict):
    kind: str
    teacher: str
    dataset: str
    seed: int
    train_languages: Languages
    teacher_train_languages: NotRequired[Languages]
    init: NotRequired[str | None]
    kd: NotRequired[bool]
    layers: NotRequired[int | None]
    hidden: NotRequired[int | None]
    intermediate: NotRequired[int | None]
    width_select: NotRequired[str | None]
    objective: NotRequired[str | None]
    unlabelled: NotRequired[str | None]
    stages: NotRequired[int | None]
    fraction: NotRequired[float]
    lm: NotRequired[dict[str, Any] | None]


@with_config(_RESULT)
class Scores(TypedDict):
    f1: float
    support: NotRequired[int]


@with_config(_RESULT)
class Baseline(TypedDict):
    overall: Scores


@with_config(_RESULT)
class PackedLanguage(TypedDict):
    n: int
    checksum: str
    gold: str
    pred: str
    lengths: NotRequired[str]


@with_config(_RESULT)
class PredictionsBlock(TypedDict):
    format: int
    task: str | None
    label_names: list[str]
    groups: dict[str, dict[str, PackedLanguage]]


@with_config(_RESULT)
class ResultMetrics(TypedDict):
    groups: dict[str, Scores]
    per_language: NotRequired[dict[str, Scores]]
    baselines: NotRequired[dict[str, dict[str, Baseline]]]
    predictions: NotRequired[PredictionsBlock | None]


@with_config(_RESULT)
class LMStudent(TypedDict):
    init_dir: str
    language: str
    variant: str
    lm_distill: dict[str, Any]


@with_config(_RESULT)
class ResultRecord(TypedDict):
    """``results/<run_id>.json``: one finished run."""

    run_id: str
    spec: ResultSpec
    metrics: ResultMetrics
    wall_seconds: NotRequired[float | None]
    loss_curve: NotRequired[Curve]
    dev_curve: NotRequired[Curve | None]
    model_dir: NotRequired[str | None]
    lm_student: NotRequired[LMStudent | None]


class ResultStore:
    def __init__(self, work_dir: str | os.PathLike):
        self.root = Path(work_dir)
        self.results_dir = self.root / "results"

    def result_path(self, run_id: str) -> Path:
        return self.results_dir / f"{run_id}.json"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def cell_step(self, run_id: str) -> Step:
        """The cell ``run_id`` as a step: its folder ``runs/<run_id>/``, its marker the result file (read through
        :class:`ResultRecord`), its identity the run id (the spec's fingerprint) the result records."""
        return Step(name="grid cell", folder=self.run_dir(run_id), settings={"run_id": run_id},
                    marker_file=self.result_path(run_id), schema=ResultRecord, recorded=_run_id_of,
                    remedy="delete it to run the cell again")

    def has(self, run_id: str) -> bool:
        """Whether the cell finished: its step is done (a result file of another shape is one sentence)."""
        return self.cell_step(run_id).done() is not None

    def load(self, run_id: str) -> dict[str, Any]:
        return read_record(self.result_path(run_id), ResultRecord)

    def save(self, run_id: str, record: dict[str, Any]) -> Path:
        """Finish the cell: its result, written atomically (its failure record, if any, removed)."""
        step = self.cell_step(run_id)
        step.write({"run_id": run_id, **record})
        (self.root / "failed" / f"{run_id}.json").unlink(missing_ok=True)
        return step.marker

    def fail(self, run_id: str, label: str, message: str) -> Path:
        """Record why a run stopped; it has no result, so the next ``grid run`` tries it again."""
        return atomic_write_json(self.root / "failed" / f"{run_id}.json",
                                 {"run_id": run_id, "label": label, "error": message})

    def grids(self) -> dict[str, list[str]]:
        """Run ids of every grid recorded in this work dir, by grid name."""
        folder = self.root / "grids"
        if not folder.is_dir():
            return {}
        return {p.stem: [r["run_id"] for r in read_record(p, GridRecord)["runs"]] for p in sorted(folder.glob("*.json"))
                if not p.name.startswith(".")}

    def records(self) -> list[dict[str, Any]]:
        """Every finished run, sorted by run id (temporary files from a killed write are ignored)."""
        if not self.results_dir.is_dir():
            return []
        return [read_record(path, ResultRecord) for path in sorted(self.results_dir.glob("*.json"))
                if not path.name.startswith(".")]


def _run_id_of(result: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": result["run_id"]}


def open_store(work_dir: str | os.PathLike, must_exist: bool = False) -> ResultStore:
    store = ResultStore(work_dir)
    if must_exist and not store.results_dir.is_dir():
        raise PolydistillError(
            f"{work_dir} holds no results (no results/ folder); pass the work dir of a 'polydistill grid run'."
        )
    return store


# ---------------------------------------------------------------- per-example predictions

PREDICTIONS_FORMAT = 1
_DTYPES = ("u1", "u2", "u4", "i1", "i2", "i4", "i8")


def pack_ints(values: Sequence[int]) -> str:
    """Integers as ``"<dtype>:<base64>"`` of a little-endian array of the smallest dtype that holds
    them (``u1`` for up to 255): 300 intent ids take 403 characters. When zlib makes the bytes
    smaller (NER tags, mostly ``O``) they are compressed and the dtype gets a ``z``: ``"u1z:<base64>"``."""
    import numpy as np

    array = np.asarray(values, dtype=np.int64).reshape(-1)
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for code in _DTYPES:
        info = np.iinfo(np.dtype("<" + code))
        if info.min <= low and high <= info.max:
            break
    raw = array.astype("<" + code).tobytes()
    packed = zlib.compress(raw, 9)
    if len(packed) < len(raw):
        code, raw = code + "z", packed
    return f"{code}:" + base64.b64encode(raw).decode("ascii")


def unpack_ints(text: str):
    """The int64 numpy array of :func:`pack_ints`."""
    import numpy as np

    code, _, payload = text.partition(":")
    compressed = code.endswith("z")
    code = code.removesuffix("z")
    if code not in _DTYPES:
        raise PolydistillError(f"packed integers start with an unknown dtype {code!r}; expected one of {_DTYPES}.")
    raw = base64.b64decode(payload)
    return np.frombuffer(zlib.decompress(raw) if compressed else raw, dtype="<" + code).astype(np.int64)


def encode_language(task: str, true: Sequence, pred: Sequence, texts: Sequence[str]) -> dict[str, Any]:
    """One language of one eval group: ``n``, ``checksum`` of the examples' texts, packed ``gold`` and
    ``pred`` ids; NER also ``lengths`` (words per sentence; gold and pred are then concatenated)."""
    entry: dict[str, Any] = {"n": len(true), "checksum": examples_checksum(texts)}
    if task == "sequence":
        entry["gold"], entry["pred"] = pack_ints(true), pack_ints(pred)
        return entry
    entry["lengths"] = pack_ints([len(row) for row in true])
    entry["gold"] = pack_ints([t for row in true for t in row])
    entry["pred"] = pack_ints([p for row in pred for p in row])
    return entry


def encode_predictions(task: str | None, label_names: Sequence[str], groups: dict[str, dict[str, dict[str, Any]]]
                       ) -> dict[str, Any]:
    """The ``metrics.predictions`` block of a result: ``groups`` is {eval group: {language: the
    :func:`encode_language` entry}}, each language's examples in the capped test split's order."""
    return {"format": PREDICTIONS_FORMAT, "task": task, "label_names": list(label_names),
            "encoding": "gold/pred/lengths: '<numpy dtype>[z]:' + base64 of the little-endian array (z: zlib)",
            "groups": groups}


def decode_predictions(record: dict[str, Any]) -> tuple[str, list[str], dict[str, list[LanguagePredictions]]] | None:
    """(task, label names, {eval group: per-language predictions}) of a result, or None when the result
    has no per-example predictions (written before they were stored)."""
    import numpy as np

    block = (record.get("metrics") or {}).get("predictions")
    if not block:
        return None
    if block.get("format") != PREDICTIONS_FORMAT:
        raise PolydistillError(f"result {record.get('run_id')} stores predictions in format {block.get('format')}; "
                               f"this polydistill reads format {PREDICTIONS_FORMAT}.")
    task = block["task"]
    groups: dict[str, list[LanguagePredictions]] = {}
    for group, languages in block["groups"].items():
        decoded = []
        for lang, entry in languages.items():
            gold, pred = unpack_ints(entry["gold"]), unpack_ints(entry["pred"])
            if gold.shape != pred.shape:
                raise PolydistillError(f"result {record.get('run_id')}: gold and pred of {group}/{lang} differ in "
                                       "length; the file is damaged, re-run the cell.")
            if task != "sequence" and entry["n"] == 0:
                gold, pred = [], []
            elif task != "sequence":
                cuts = np.cumsum(unpack_ints(entry["lengths"]))[:-1]
                gold, pred = np.split(gold, cuts), np.split(pred, cuts)
            if len(gold) != entry["n"]:
                raise PolydistillError(f"result {record.get('run_id')}: {group}/{lang} holds {len(gold)} examples, "
                                       f"not the {entry['n']} it names; the file is damaged, re-run the cell.")
            decoded.append(LanguagePredictions(lang, entry["checksum"], gold, pred))
        groups[group] = decoded
    return task, list(block["label_names"]), groups

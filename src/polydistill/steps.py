"""One resumable step: a unit of work whose output is written atomically, then a small done marker.

A :class:`Step` is a name, a folder, the settings that decide its output (its **identity**), and the
output model directories it leaves. Its **fingerprint** is its identity through one rule (``identify``,
by default the identity itself, JSON-normalised): the settings a step records may carry fields that do
not identify it (a setting added later, at its default), and the rule drops them on both sides, so old
markers stay valid. The step is **done** exactly when its marker (by default ``<folder>/done.json``, read
through :func:`polydistill.io.read_record` and the step's schema) exists, records this fingerprint, and its
outputs are still there: each output directory holds a config and weights, and — for markers that record
them — the SHA-256 of every weight file is the one recorded (a truncated or replaced file is noticed, never
reported as done). :meth:`Step.finish` writes the marker atomically (``settings``, ``summary``, ``seconds``,
``weight_files``); what writes the output itself (``save_model_dir``, ``atomic_output_dir``) is the
step's own business. A marker of another fingerprint is refused in one sentence naming what differs
(:func:`differences`, the rule every fingerprint comparison in polydistill uses), or — for a step whose
output another run may hold (``others="ignore"``) — is simply not this step's: the caller's output preflight
decides.

A step whose marker predates the step model keeps its file and its format: the marker path, the schema it
is read through and where it records the identity (``recorded``) are the step's. So are

- compress's stages (:mod:`polydistill.compress.stages`, ``<stage>/done.json``);
- a grid's cells (:meth:`polydistill.experiments.store.ResultStore.cell_step`: the marker is the result
  ``results/<run_id>.json``, its identity the run id, the rule that fingerprints a cell's spec) and the
  training inside a cell (``runs/<run_id>/train_result.json`` beside its model);
- a run of the training core (:func:`polydistill.distill.run.run_step`: the marker is the model directory's
  ``run.json``, written inside the atomic hand-over, with its fingerprint and weight digests); the run keeps
  its checkpoints inside it (``<out>.work``, :mod:`polydistill.distill.checkpoints`);
- the lm-distilled inits of language-specific cells (:mod:`polydistill.experiments.lang_cells`: a JSON
  beside each output).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict

from polydistill.errors import PolydistillError
from polydistill.io import WEIGHT_SUFFIXES, atomic_write_json, read_record, weight_digests


def digest(data: Any) -> str:
    """A short, stable name for JSON-able ``data`` (12 hex digits of the SHA-256 of its canonical JSON): what
    names a shared artefact by what decides it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


MARKER = "done.json"
# the files of an output directory whose digests a marker records: PyTorch weights and ONNX graphs / data
OUTPUT_WEIGHT_SUFFIXES = (*WEIGHT_SUFFIXES, ".onnx", ".onnx_data")


@with_config(ConfigDict(extra="allow"))  # a marker keeps every field it was written with
class StepMarker(TypedDict):
    """``<step folder>/done.json``."""

    stage: str
    seconds: float
    settings: dict[str, Any]  # the step's identity (its fingerprint is ``identify(settings)``)
    summary: dict[str, Any]
    weight_files: NotRequired[dict[str, str]]  # SHA-256 by output file (relative to the step folder)


class StepOutputGone(PolydistillError):
    """A finished step's output was deleted or changed since its marker was written."""

    def __init__(self, step: Step, path: Path, how: str):
        self.step, self.path, self.how = step, path, how
        super().__init__(f"{step.folder} is a finished {step.name} step, but its output {path} was {how} since; "
                         f"restore it, or {step.remedy}.")


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of the entries that differ between two fingerprints (nested dicts)."""
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


def differs_in(old: dict[str, Any], new: dict[str, Any], strip: str = "", shown: int = 6) -> str:
    """``a, b, c …``: the first ``shown`` differences of two fingerprints, for a one-sentence refusal."""
    changed = [name.removeprefix(strip) for name in differences(old, new)]
    return ", ".join(changed[:shown]) + (" …" if len(changed) > shown else "")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _settings_of(marker: dict[str, Any]) -> dict[str, Any]:
    return marker["settings"]


def named_by_path(marker: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` of a step whose identity is its marker's path (a run id, a hash of its settings): the marker
    records none (its settings are ``{}``), so a marker there is this step's."""
    return {}


@dataclass
class Step:
    """One resumable step (see the module docstring). ``outputs``: the model directories it writes (a config
    and weights each; their weight files' digests are recorded); ``records``: other output files, each read
    back through its schema (``None``: only its existence is checked); ``extra``: marker fields written after
    ``stage`` (e.g. the step's index in a pipeline).

    Where the marker lives and how it reads: ``marker_file`` (default ``<folder>/done.json``), ``schema`` (a
    pydantic model or TypedDict; default :class:`StepMarker`), ``recorded`` (the identity the marker records;
    default its ``settings``); ``others``: a marker of another fingerprint is refused (``"refuse"``, the
    sentence ending with ``remedy``) or not this step's (``"ignore"``: :meth:`done` returns None)."""

    name: str
    folder: Path
    settings: dict[str, Any]
    outputs: tuple[Path, ...] = ()
    records: tuple[tuple[Path, Any], ...] = ()
    identify: Callable[[dict[str, Any]], dict[str, Any]] = lambda settings: settings
    extra: dict[str, Any] = field(default_factory=dict)
    marker_file: Path | None = None
    schema: Any = StepMarker
    recorded: Callable[[dict[str, Any]], dict[str, Any]] = _settings_of
    others: Literal["refuse", "ignore"] = "refuse"
    remedy: str = "pass --overwrite to run afresh"  # the end of a refusal: how to start the step afresh

    @property
    def marker(self) -> Path:
        return self.marker_file if self.marker_file is not None else self.folder / MARKER

    def fingerprint(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """The identity (this step's, or ``settings`` as a marker recorded them) through the step's rule."""
        return _jsonable(self.identify(_jsonable(self.settings if settings is None else settings)))

    def read(self) -> dict[str, Any] | None:
        """The marker as recorded (read through the step's schema), or None without one."""
        if not self.marker.is_file():
            return None
        record = read_record(self.marker, self.schema)
        return record.model_dump() if isinstance(record, BaseModel) else record

    def done(self) -> dict[str, Any] | None:
        """The marker when this step finished with this fingerprint and its outputs are intact; None when it has
        not finished. A marker of another fingerprint is refused naming what differs (or, ``others="ignore"``,
        None); an output deleted or changed since is :class:`StepOutputGone` (the caller decides: refuse, or run
        the step again)."""
        marker = self.read()
        if marker is None:
            return None
        recorded, current = self.fingerprint(self.recorded(marker)), self.fingerprint()
        if recorded != current:
            if self.others == "ignore":
                return None
            where = self.folder if self.marker_file is None else self.marker
            raise PolydistillError(f"{where} holds a {self.name} step of other settings (it differs in "
                                   f"{differs_in(recorded, current)}); {self.remedy}.")
        self.check_outputs(marker)
        return marker

    def check_outputs(self, marker: dict[str, Any]) -> None:
        """Raise :class:`StepOutputGone` for the first output gone or changed since ``marker`` was written."""
        for out in self.outputs:
            if not ((out / "config.json").is_file() and out.is_dir()
                    and any(f.suffix in OUTPUT_WEIGHT_SUFFIXES for f in out.iterdir())):
                raise StepOutputGone(self, out, "deleted")
        recorded = marker.get("weight_files")
        if recorded is not None:  # markers written before the step model have none: presence is all they show
            current = self.digests()
            changed = sorted(n for n in {*recorded, *current} if recorded.get(n) != current.get(n))
            if changed:
                raise StepOutputGone(self, self._path(changed[0]), "changed")
        for path, schema in self.records:
            if not path.is_file():
                raise StepOutputGone(self, path, "deleted")
            if schema is not None:
                read_record(path, schema)  # a record edited into another shape: one sentence, here

    def finish(self, summary: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Write the marker atomically (after the outputs are in place) and return it."""
        return self.write({"stage": self.name, **self.extra, "seconds": round(seconds, 2),
                           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "settings": self.settings, "summary": summary})

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` as the marker atomically, with the outputs' weight digests (``weight_files``) when the
        step has outputs, and return it: :meth:`finish`, or a step whose marker has a format of its own."""
        if self.outputs:
            record["weight_files"] = self.digests()
        atomic_write_json(self.marker, record)
        return record

    def digests(self) -> dict[str, str]:
        """SHA-256 of every weight file of the outputs, by name relative to the folder."""
        out = {}
        for folder in self.outputs:
            if folder.is_dir():
                for name, digest in weight_digests(folder, OUTPUT_WEIGHT_SUFFIXES).items():
                    out[self._name(folder / name)] = digest
        return out

    def _name(self, path: Path) -> str:
        return str(path.relative_to(self.folder)) if path.is_relative_to(self.folder) else str(path)

    def _path(self, name: str) -> Path:
        return Path(name) if Path(name).is_absolute() else self.folder / name


__all__ = ["MARKER", "OUTPUT_WEIGHT_SUFFIXES", "Step", "StepMarker", "StepOutputGone", "differences", "differs_in",
           "named_by_path"]

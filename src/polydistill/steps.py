"""One resumable step: a unit of work whose output is written atomically, then a small done marker.

A :class:`Step` is a name, a folder, the settings that decide its output (its **identity**), and the
output model directories it leaves. Its **fingerprint** is its identity through one rule (``identify``,
by default the identity itself, JSON-normalised): the settings a step records may carry fields that do
not identify it (a setting added later, at its default), and the rule drops them on both sides, so old
markers stay valid. The step is **done** exactly when its marker (``<folder>/done.json``, read through
:func:`polydistill.io.read_record`) exists, records this fingerprint, and its outputs are still there:
each output directory holds a config and weights, and — for markers written since the step model — the
SHA-256 of every weight file is the one recorded (a truncated or replaced file is noticed, never reported
as done). :meth:`Step.finish` writes the marker atomically (``settings``, ``summary``, ``seconds``,
``weight_files``); what writes the output itself (``save_model_dir``, ``atomic_output_dir``) is the
step's own business. A marker of another fingerprint is refused in one sentence naming what differs
(:func:`differences`, the rule every fingerprint comparison in polydistill uses).

Used by compress's stages (:mod:`polydistill.compress.stages`); the training core keeps its checkpoints
inside its run (:mod:`polydistill.distill.checkpoints`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, with_config
from typing_extensions import NotRequired, TypedDict

from polydistill.errors import PolydistillError
from polydistill.io import WEIGHT_SUFFIXES, atomic_write_json, read_record, weight_digests

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
                         "restore it, or pass --overwrite to run afresh.")


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


@dataclass
class Step:
    """One resumable step (see the module docstring). ``outputs``: the model directories it writes (a config
    and weights each; their weight files' digests are recorded); ``records``: other output files, each read
    back through its schema (``None``: only its existence is checked); ``extra``: marker fields written after
    ``stage`` (e.g. the step's index in a pipeline)."""

    name: str
    folder: Path
    settings: dict[str, Any]
    outputs: tuple[Path, ...] = ()
    records: tuple[tuple[Path, Any], ...] = ()
    identify: Callable[[dict[str, Any]], dict[str, Any]] = lambda settings: settings
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    def fingerprint(self, settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """The identity (this step's, or ``settings`` as a marker recorded them) through the step's rule."""
        return _jsonable(self.identify(_jsonable(self.settings if settings is None else settings)))

    def read(self) -> dict[str, Any] | None:
        """The marker as recorded (read through :class:`StepMarker`), or None without one."""
        return read_record(self.marker, StepMarker) if self.marker.is_file() else None

    def done(self) -> dict[str, Any] | None:
        """The marker when this step finished with this fingerprint and its outputs are intact; None when it has
        not finished. A marker of another fingerprint is refused naming what differs; an output deleted or
        changed since is :class:`StepOutputGone` (the caller decides: refuse, or run the step again)."""
        marker = self.read()
        if marker is None:
            return None
        recorded, current = self.fingerprint(marker["settings"]), self.fingerprint()
        if recorded != current:
            raise PolydistillError(f"{self.folder} holds a {self.name} step of other settings (it differs in "
                                   f"{differs_in(recorded, current)}); pass --overwrite to run afresh.")
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
            current = self._digests()
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
        record: dict[str, Any] = {"stage": self.name, **self.extra, "seconds": round(seconds, 2),
                                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "settings": self.settings, "summary": summary}
        if self.outputs:
            record["weight_files"] = self._digests()
        atomic_write_json(self.marker, record)
        return record

    def _digests(self) -> dict[str, str]:
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


__all__ = ["MARKER", "OUTPUT_WEIGHT_SUFFIXES", "Step", "StepMarker", "StepOutputGone", "differences", "differs_in"]

"""compress, the output directory ``DIR``: made this command's (``compress.json``, the command's fingerprint:
a different command is refused, naming what differs; the same one resumes), an earlier run that
``--overwrite`` replaces kept aside until the new one has finished (a run that fails gives it back byte for
byte), and the final models ``DIR/model`` and ``DIR/model-int8``."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from polydistill.compress.stages import Context
from polydistill.errors import PolydistillError
from polydistill.io import (
    COMPRESS_FILE,
    atomic_output_dir,
    atomic_write_json,
    is_polydistill_output,
    read_record,
)
from polydistill.steps import differs_in
from polydistill.student.card import command_line

__all__ = ["claimed", "final_outputs", "record_command"]


def _claim(root: Path, fp: dict[str, Any], overwrite: bool) -> bool:
    """Make ``root`` (already through the output preflight) this command's: True when it already holds this
    command's run (resume). With ``overwrite``, an earlier run is set aside (renamed, not deleted) until the new
    one finishes."""
    from polydistill.compress.records import CompressRecord

    _restore_previous(root)  # an --overwrite run that was killed: the earlier result comes back first
    record_path = root / COMPRESS_FILE
    if record_path.is_file():
        old = read_record(record_path, CompressRecord)["fingerprint"]
        if old == fp and not overwrite:
            return True
        if not overwrite:
            shown = differs_in(old, fp, strip="settings.")
            raise PolydistillError(f"{root} holds a compress run of another command (it differs in {shown}); pass "
                                   "--overwrite to start afresh, or use another --out.")
        _previous(root).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root, _previous(root))
        return False
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise PolydistillError(f"Output directory {root} already exists and holds no compress run; choose another "
                                   "--out or pass --overwrite.")
        leftover = {p.name for p in root.iterdir()} <= {"stages"}  # a run that stopped before its plan was done
        if not leftover and not is_polydistill_output(root):
            raise PolydistillError(f"{root} is not an output of polydistill, and --overwrite only replaces "
                                   "polydistill's own outputs; choose another --out, or remove it yourself.")
        os.replace(root, _previous(root))
    return False


def _previous(root: Path) -> Path:
    """Where ``--overwrite`` keeps the earlier run until the new one has finished."""
    return root.with_name(f".{root.name}.previous")


def _drop_previous(root: Path) -> None:
    """Drop the earlier run once the new one has finished: renamed out of the way first (one atomic step), then
    deleted, so a deletion that is interrupted never leaves a half-deleted ``.DIR.previous`` that the next
    command would restore over the finished run."""
    previous = _previous(root)
    if previous.exists():
        gone = previous.with_name(f"{previous.name}.discard.{os.getpid()}")
        os.replace(previous, gone)
        shutil.rmtree(gone, ignore_errors=True)


def _sweep_discarded(root: Path) -> None:
    for gone in root.parent.glob(f".{root.name}.previous.discard.*"):  # an interrupted drop: never restored
        shutil.rmtree(gone, ignore_errors=True)


def _restore_previous(root: Path) -> None:
    _sweep_discarded(root)
    if _previous(root).is_dir():
        if root.exists():
            shutil.rmtree(root)
        os.replace(_previous(root), root)


@contextlib.contextmanager
def claimed(root: Path, fp: dict[str, Any], overwrite: bool) -> Iterator[bool]:
    """:func:`_claim` for the duration of a run: a run that replaces an earlier one and fails (an error,
    Ctrl-C) gives the earlier result back byte for byte; one that finishes drops it."""
    resumed = _claim(root, fp, overwrite)
    try:
        yield resumed
    except BaseException:
        _restore_previous(root)
        raise
    _drop_previous(root)


def record_command(root: Path, fp: dict[str, Any]) -> None:
    """Write ``DIR/compress.json`` (the fingerprint and the command line): from here on ``DIR`` belongs to this
    command (the plan passed every refusal)."""
    atomic_write_json(root / COMPRESS_FILE, {
        "fingerprint": fp, "command": command_line(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def final_outputs(ctx: Context) -> dict[str, Path]:
    """``DIR/model`` and ``DIR/model-int8``: copies of the KD and int8 stages' outputs (written atomically)."""
    outputs = {"model": ctx.root / "model", "int8": ctx.root / "model-int8"}
    for key, stage in (("model", "kd"), ("int8", "int8")):
        source = ctx.model_dir(stage)
        with atomic_output_dir(outputs[key], overwrite=True, own=True) as tmp:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
    return outputs

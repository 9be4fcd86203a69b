"""The Trainer's checkpoints of a run's work directory: which one a run resumes from (half-written ones a kill
left are removed first). Shared by the training core (:mod:`polydistill.distill.run`), its Trainer (the message
of a diverged run names the last good checkpoint) and lm-distill."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def _prune_incomplete_checkpoints(folder: Path) -> None:
    """Delete checkpoints a kill left half written, so training resumes from the last complete one.

    The Trainer writes trainer_state.json last, and ``get_last_checkpoint`` picks the newest folder
    whether or not it is complete (the resume then fails with "Can't find a valid checkpoint")."""
    for ckpt in folder.glob("checkpoint-*") if folder.is_dir() else []:
        try:
            json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            shutil.rmtree(ckpt, ignore_errors=True)


def last_complete_checkpoint(folder: str | Path, prune: bool = True) -> str | None:
    """The newest resumable checkpoint in ``folder`` (half-written ones removed first), or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(folder)
    if not folder.is_dir():
        return None
    if prune:
        _prune_incomplete_checkpoints(folder)
    complete = [c for c in folder.glob("checkpoint-*") if (c / "trainer_state.json").is_file()]
    if not complete:
        return None
    return get_last_checkpoint(str(folder)) if prune else str(max(complete, key=lambda c: int(c.name.split("-")[1])))

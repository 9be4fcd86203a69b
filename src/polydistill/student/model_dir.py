"""The one writer of a polydistill model directory (a student, a trained model, a vocabulary-reduced copy, an
export): written atomically (a temporary sibling renamed into place, optionally under the output's lock), the
model and tokenizer first, then whatever the caller adds, then the records — ``polydistill.json``, ``run.json``
and the model card, in that order, the card naming the records beside it — and last :func:`make_portable`
(no custom-code hooks, a tokenizer class transformers 4.x and 5.x both load)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.io import RUN_FILE, atomic_output_dir, atomic_write_json, make_portable, output_lock
from polydistill.student.card import write_card
from polydistill.student.provenance import Provenance, write_provenance


@dataclass
class ModelDir:
    """The directory being written (``path``, a temporary sibling of the output) and the records written when
    the ``with`` block ends; the block may set them once they are known."""

    path: Path
    stage: str  # the card's kind: student, distill, finetune, vocab-reduce, export, ...
    provenance: Provenance | None = None  # written as polydistill.json
    run: dict[str, Any] | None = None  # written as run.json (a training run's record) and summarised on the card
    source: str | None = None  # the model this one was made from, named on the card

    def save(self, model: Any = None, tokenizer: Any = None) -> None:
        """``save_pretrained`` of ``model`` (a model, or only its config) and ``tokenizer`` into the directory.
        :func:`save_model_dir` calls it before its block; a block calls it itself where they must follow its
        own work (an export saves config and tokenizer after tracing and checking, which set the tokenizer's
        padding and truncation that its ``tokenizer.json`` records)."""
        if model is not None:
            model.save_pretrained(self.path)  # safetensors (the only format in transformers 5)
        if tokenizer is not None:
            tokenizer.save_pretrained(self.path)


@contextlib.contextmanager
def save_model_dir(out: str | os.PathLike, stage: str, *, model: Any = None, tokenizer: Any = None,
                   provenance: Provenance | None = None, run: dict[str, Any] | None = None,
                   source: str | None = None, overwrite: bool = False, lock: bool = False,
                   expected_bytes: int = 0, own: bool = False) -> Iterator[ModelDir]:
    """Write the model directory ``out``: ``model`` (a model, or only its config where the weights are another
    file) and ``tokenizer`` are saved with ``save_pretrained`` before the block runs (or by the block, through
    :meth:`ModelDir.save`); the block adds its own files into ``ModelDir.path``; on leaving it the records are written, the directory made
    portable and renamed into place. An exception leaves ``out`` as it was. ``lock``: hold ``out``'s lock
    (one writer per output; also removes temporaries a killed writer left). ``overwrite``, ``expected_bytes``
    and ``own`` as in :func:`polydistill.io.atomic_output_dir`."""
    held = output_lock(Path(out)) if lock else contextlib.nullcontext()
    with held, atomic_output_dir(out, overwrite, expected_bytes, own=own) as tmp:
        target = ModelDir(tmp, stage, provenance, run, source)
        target.save(model, tokenizer)
        yield target
        if target.provenance is not None:
            write_provenance(tmp, target.provenance)
        if target.run is not None:
            atomic_write_json(tmp / RUN_FILE, target.run)
        write_card(tmp, target.stage, target.provenance, target.run, source=target.source)
        make_portable(tmp)  # a teacher's auto_map / custom code is never handed on

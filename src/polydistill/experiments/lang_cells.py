"""The lm-distilled init of a language-specific student cell (the cells themselves: :mod:`.lang_grid`).

:func:`build_lm_student` makes, once per work dir, what a cell's fine-tuning starts from, every step a
directory under ``<work dir>/lm-students/`` with a JSON record beside it, a :class:`polydistill.steps.Step` whose
marker is that record (written last, so a present record with its output means a finished step; a killed step
resumes: lm-distill from its checkpoints, the others are redone):

1. ``corpus-<lang>-<key>.txt``: the language's corpus (the inputs of the configured splits, one a line);
2. ``vocab: pre`` only, ``teacher-<key>/``: the teacher with its vocabulary reduced to the corpus (VocabReduce);
3. ``lm-<key>/``: ``lm-distill`` of that teacher on the corpus (a head-less teacher gets its MLM head fitted
   first; the record keeps the fit's first and last MLM loss next to the uniform loss ln |V|, and the
   distillation's train seconds: Table 5's training time);
4. ``vocab: post`` only, ``post-<key>/``: the distilled student with its vocabulary reduced to the corpus.

The keys hash everything that decides the step's output (:meth:`LMCell.distill_key`), so the cells of two tasks,
of every seed and of every grid sharing the work dir share one distillation; concurrent ``grid run``s wait
for each other on a lock per init.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polydistill.experiments.grid import RunSpec
from polydistill.experiments.lang_grid import LMCell
from polydistill.experiments.store import ResultStore
from polydistill.io import atomic_write_text, wait_lock
from polydistill.steps import Step, StepOutputGone, digest, named_by_path

FOLDER = "lm-students"


def _sidecar(path: Path) -> Path:
    return path.with_name(f"{path.name}.json")


def _step(path: Path, model: bool = True) -> Step:
    """The step that writes ``path`` (a model directory, or the corpus file): its marker the JSON beside it (its
    format the record's own: it is kept in the cells' results), its identity the key in its name."""
    output = path / "config.json" if model else path
    return Step(name="lm-student", folder=path.parent, settings={}, marker_file=_sidecar(path), schema=dict[str, Any],
                recorded=named_by_path, records=((output, None),))


def _cached(step: Step) -> dict[str, Any] | None:
    """The record of a finished step (its output present too), else None (an output gone: done again)."""
    try:
        return step.done()
    except StepOutputGone:
        return None


def corpus_sentences(lm: LMCell, data_root: str | None) -> tuple[list[str], str]:
    """The language's corpus lines and their provenance (never the test split: the schema refuses it)."""
    from polydistill.vocab.sources import dataset_sources

    sources, _ = dataset_sources(lm.corpus.dataset, [lm.language], data_root, splits=tuple(lm.corpus.splits),
                                 heldout_split=None)
    lines = [" ".join(s.split()) for source in sources for s in source.sentences]
    lines = [line for line in lines if line]
    if lm.corpus.max_lines is not None:
        lines = lines[:lm.corpus.max_lines]
    where = (f"{lm.corpus.dataset} {lm.language}: the inputs of its {' + '.join(lm.corpus.splits)} split(s), "
             "test split excluded, labels never read")
    return lines, where


def _corpus(lm: LMCell, data_root: str | None, root: Path) -> tuple[Path, list[str], dict[str, Any]]:
    path = root / f"corpus-{lm.language}-{lm.corpus_key(data_root)}.txt"
    lines, where = corpus_sentences(lm, data_root)
    step = _step(path, model=False)
    record = _cached(step)
    if record is None:
        atomic_write_text(path, "\n".join(lines) + "\n")
        record = step.write({"file": str(path), "lines": len(lines), "words": sum(len(line.split()) for line in lines),
                             "provenance": where})
    return path, lines, record


def _reduce(source: str | Path, lines: list[str], out: Path, lm: LMCell, where: str, description: str
            ) -> dict[str, Any]:
    """VocabReduce of ``source`` to the corpus ``lines`` into ``out`` (once); its record."""
    from polydistill.vocab.reduce import vocab_reduce

    step = _step(out)
    record = _cached(step)
    if record is not None:
        return record
    start = time.time()
    reduction = vocab_reduce(source, lines, out, min_sentence_freq=lm.vocab_min_sentence_freq,
                             corpus_description=description, overwrite=True)
    record = {"where": where, "source": str(source), "vocab_before": reduction.plan.old_size,
              "vocab_after": reduction.plan.new_size, "min_sentence_freq": lm.vocab_min_sentence_freq,
              "seconds": round(time.time() - start, 2)}
    return step.write(record)


def _distill(teacher: str | Path, corpus: Path, out: Path, lm: LMCell,
             on_step: Callable[[int, int], None] | None) -> dict[str, Any]:
    """lm-distill of ``teacher`` on the corpus into ``out`` (once, resumable); its record."""
    from polydistill.distill.lm_distill import lm_distill
    from polydistill.distill.run import step_report_callback
    from polydistill.distill.settings import LMDistillSettings
    from polydistill.modeling import load_config
    from polydistill.student.provenance import read_provenance

    step = _step(out)
    record = _cached(step)
    if record is not None:
        return record
    v = lm.settings
    settings = LMDistillSettings.model_validate({
        **lm.training.model_dump(), "layers": lm.layers, "layer_map": lm.layer_map, "alpha_ce": v.alpha_ce,
        "alpha_mlm": v.alpha_mlm, "alpha_cos": v.alpha_cos, "alpha_mse": v.alpha_mse, "temperature": v.temperature,
        "fit_teacher_head_steps": lm.fit_teacher_head_steps, "fit_teacher_head_lr": lm.fit_teacher_head_lr,
        "seed": lm.seed, "output_dir": out, "resume": True, "overwrite": False, "progress": False,
        "teacher_head_dir": out.parent})  # variants that differ only in the distillation share the head fit
    start = time.time()
    result = lm_distill(teacher, [str(corpus)], settings, callbacks=step_report_callback(on_step))
    provenance = read_provenance(result.output_dir)
    done = (provenance.get("lm_distill") if provenance is not None else None) or {}
    vocab = load_config(teacher).vocab_size
    record = {
        "teacher": str(teacher), "vocab_size": vocab, "train_lines": done.get("train_lines"),
        "validation_lines": done.get("validation_lines"), "global_step": done.get("global_step"),
        "loss_weights": done.get("loss_weights"), "temperature": v.temperature,
        "teacher_head": result.teacher_head, "teacher_head_fit": done.get("teacher_head_fit") or {},
        "uniform_mlm_loss": math.log(vocab),  # what a head that learnt nothing scores
        "best_val_loss": result.best_val_loss, "best_val_terms": result.best_val_terms,
        "train_seconds": result.train_seconds, "wall_seconds": round(time.time() - start, 2),
        "resumed_from": result.resumed_from,
    }
    return step.write(record)


def build_lm_student(spec: RunSpec, store: ResultStore, on_step: Callable[[int, int], None] | None = None,
                     ) -> tuple[Path, dict[str, Any]]:
    """(model dir the cell fine-tunes, its record) of a language-specific student cell; built once per work dir."""
    lm = spec.lm
    assert lm is not None, f"{spec.label} is not a language-specific student"
    teacher = spec.base or spec.teacher_model
    root = store.root / FOLDER
    key = lm.distill_key(teacher)
    final = f"post-{key}-{digest([lm.vocab_min_sentence_freq, lm.corpus_key(spec.data_root)])}" \
        if lm.settings.vocab == "post" else f"lm-{key}"
    # not lm-distill's own lock on its output: another grid run building this init is waited for, then reused
    with wait_lock(root / f"{final}.build"):
        return _build(spec, lm, teacher, root, key, root / final, on_step)


def _build(spec: RunSpec, lm: LMCell, teacher: str, root: Path, key: str, final: Path,
           on_step: Callable[[int, int], None] | None) -> tuple[Path, dict[str, Any]]:
    corpus, lines, corpus_record = _corpus(lm, spec.data_root, root)
    reductions = []
    source: str | Path = teacher
    if lm.settings.vocab == "pre":
        source = root / f"teacher-{digest([teacher, lm.vocab_min_sentence_freq, lm.corpus_key(spec.data_root)])}"
        reductions.append(_reduce(teacher, lines, source, lm, "pre-distillation (teacher)", corpus_record["provenance"]))
    distilled = root / f"lm-{key}"
    record = _distill(source, corpus, distilled, lm, on_step)
    if lm.settings.vocab == "post":
        reductions.append(_reduce(distilled, lines, final, lm, "post-distillation (student)",
                                  corpus_record["provenance"]))
    return final, {"variant": lm.variant, "language": lm.language, "vocab": lm.settings.vocab,
                   "corpus": corpus_record, "vocab_reduction": reductions[0] if reductions else None,
                   "lm_distill": record, "init_dir": str(final)}

"""VocabReduce (Singh et al. 2023, §5): keep only the sub-words the target languages need, for any tokenizer model.

A multilingual vocabulary dominates the parameter count of small encoders (multilingual-e5-small keeps
~96M of its 118M parameters in a 250k-row embedding). The entry points here tie the parts together:

* :mod:`polydistill.vocab.sources` — corpora, task-data inputs, wordfreq lists, held-out text;
* :mod:`polydistill.vocab.plan` — sentence frequencies, thresholds, coverage targeting, the kept set;
* :mod:`polydistill.vocab.coverage` — how much held-out text tokenises exactly as before (the report);
* :mod:`polydistill.vocab.tokenizer` — the rebuilt ``tokenizer.json`` (WordPiece / Unigram / BPE);
* :mod:`polydistill.vocab.model` — the model with its vocabulary-sized tensors sliced.

:func:`plan_vocab` computes the plan and its coverage report without touching the weights (``vocab plan``
/ ``vocab reduce --dry-run``); :func:`vocab_reduce` then writes the reduced model directory atomically
with its provenance and model card. On text whose tokens were all kept the reduced tokenizer produces the
same pieces, hence after the id map the same ids and the same model outputs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.architectures import count_parameters, task_of
from polydistill.errors import PolydistillError, require
from polydistill.io import (
    atomic_write_json,
    check_output_dir,
    check_output_path,
    package_versions,
    read_json,
)
from polydistill.modeling import load_config, load_tokenizer, resolve_model_dir
from polydistill.student.model_dir import save_model_dir
from polydistill.student.provenance import Provenance, read_provenance
from polydistill.student.usage import copy_usage_files
from polydistill.vocab.coverage import encode_heldout, measure_reduced, summary_rows
from polydistill.vocab.model import model_class, parameter_counts, reduce_model
from polydistill.vocab.plan import (
    VocabPlan,
    check_sentence_options,
    plan_coverage,
    plan_reduction,
    plan_vocabulary,
    sentence_frequencies,
    text_candidates,
    wordfreq_candidates,
)
from polydistill.vocab.sources import (
    HeldoutText,
    TextSource,
    WordFreqSource,
    dataset_sentences,
    language_key,
    read_corpus_files,
    resolve_labels,
)
from polydistill.vocab.tokenizer import (
    FALLBACK_DOC,
    backend_from_json,
    backend_json,
    build_reduced_tokenizer,
    is_byte_level,
    reduce_tokenizer_json,
    save_tokenizer,
)

E5_PROMPTS = ("query: ", "passage: ")
_E5_NAME = re.compile(r"(?<![a-z0-9])e5", re.IGNORECASE)


@dataclass
class VocabReduction:
    model: Any
    tokenizer: Any
    plan: VocabPlan
    provenance: Provenance
    path: Path | None = None
    report: dict | None = None


@dataclass
class VocabPlanning:
    """A plan and its report, before any weight is loaded or any file written."""

    plan: VocabPlan
    report: dict
    tokenizer: Any
    reduced_backend: dict
    config: Any
    source_provenance: Provenance | None


# ----------------------------------------------------------------------------------------- keep texts
def sentence_transformers_prompts(model_dir: Path) -> list[str]:
    """The prompts a sentence-transformers model is used with (``config_sentence_transformers.json``)."""
    path = Path(model_dir) / "config_sentence_transformers.json"
    if not path.is_file():
        return []
    record = read_json(path)
    prompts = (record.get("prompts") if isinstance(record, dict) else None) or {}
    return [p for p in prompts.values() if isinstance(p, str) and p] if isinstance(prompts, dict) else []


def looks_like_e5(model_dir: Path, config, provenance: Provenance | None, name: str | None = None) -> bool:
    """Whether the model is (made from) an e5 model, by the names it (``name``: its hub id) and its
    provenance carry."""
    names = [model_dir, name, getattr(config, "_name_or_path", "")]
    if provenance is not None:
        names += [provenance.teacher, (provenance.get("vocab_reduction") or {}).get("source")]
    return any(_E5_NAME.search(Path(str(name)).name) for name in names if name)


def always_kept_texts(model_dir: Path, config, provenance: Provenance | None,
                      keep_text: Sequence[str] | None, name: str | None = None) -> list[str]:
    """The sentence-transformers prompts, plus ``keep_text`` or, when it is not given, e5's
    ``query: `` / ``passage: `` for an e5 model."""
    extra = list(keep_text) if keep_text is not None else (
        list(E5_PROMPTS) if looks_like_e5(model_dir, config, provenance, name) else [])
    return list(dict.fromkeys([*sentence_transformers_prompts(model_dir), *extra]))


# ---------------------------------------------------------------------------------------------- plan
def _merge_heldout(heldout: Sequence[HeldoutText]) -> dict[str, HeldoutText]:
    merged: dict[str, HeldoutText] = {}
    for item in heldout:
        key = language_key(item.label)
        if key in merged:
            merged[key] = HeldoutText(merged[key].sentences + list(item.sentences), key,
                                      f"{merged[key].description} + {item.description}")
        else:
            merged[key] = HeldoutText(list(item.sentences), key, item.description)
    return merged


def plan_vocab(
    model_dir: str | Path,
    sentences: Sequence[str] | Iterable[str] | None = None,
    *,
    sources: Sequence[TextSource | WordFreqSource] = (),
    heldout: Sequence[HeldoutText] = (),
    keep_text: Sequence[str] | None = None,
    min_sentence_freq: float = 0.0005,
    max_tokens: int | None = None,
    wordfreq_min_freq: float = 0.0,
    min_coverage: float | None = None,
    corpus_description: str = "custom corpus",
) -> VocabPlanning:
    """The kept set for ``sentences`` and/or ``sources`` and its coverage report on ``heldout``."""
    check_sentence_options(min_sentence_freq, max_tokens)
    require(wordfreq_min_freq >= 0, f"--wordfreq-min-freq must be ≥ 0, not {wordfreq_min_freq}.")
    name, model_dir = str(model_dir), resolve_model_dir(model_dir)  # a directory, or a hub id's snapshot
    config = load_config(name)
    tokenizer = load_tokenizer(name)
    backend = backend_json(tokenizer)
    all_sources = list(sources)
    if sentences is not None:
        all_sources.insert(0, TextSource(sentences, label=None, description=corpus_description))
    require(all_sources, "Give at least one vocabulary source: --corpus FILE..., --dataset NAME --languages L, "
                         "or --wordfreq LANG.")
    heldout = list(heldout)
    resolve_labels([*all_sources, *heldout])
    byte_level = is_byte_level(backend)
    candidates = [
        wordfreq_candidates(tokenizer, s, wordfreq_min_freq, byte_level) if isinstance(s, WordFreqSource)
        else text_candidates(tokenizer, s, min_sentence_freq, max_tokens)
        for s in all_sources
    ]
    encodings = [encode_heldout(tokenizer, text, key) for key, text in _merge_heldout(heldout).items()]
    previous = read_provenance(model_dir)
    texts = always_kept_texts(model_dir, config, previous, keep_text, name)
    plan = plan_vocabulary(tokenizer, candidates, keep_text=texts, min_coverage=min_coverage, heldout=encodings,
                           thresholds={"min_sentence_freq": min_sentence_freq, "wordfreq_min_freq": wordfreq_min_freq})
    reduced = reduce_tokenizer_json(backend, plan)
    reduced_tokenizer = backend_from_json(reduced)
    unk = plan.old_to_new.get(tokenizer.unk_token_id) if tokenizer.unk_token_id is not None else None
    languages = plan_coverage(plan, encodings)
    for enc in encodings:
        languages[enc.key].update(measure_reduced(enc, reduced_tokenizer, plan.old_to_new, unk))
        if enc.key in plan.languages:
            languages[enc.key]["selection"] = plan.languages[enc.key]
    sizes = parameter_counts(config, plan)
    teacher_parameters = previous.teacher_parameters if previous is not None else None
    report = {
        "model": name, "tokenizer_model": plan.model_type,
        "vocab_before": plan.old_size, "vocab_after": plan.new_size, **sizes,
        "params_share": round(sizes["params_after"] / sizes["params_before"], 5),
        "teacher_parameters": teacher_parameters,
        "params_share_of_teacher": round(sizes["params_after"] / teacher_parameters, 5) if teacher_parameters else None,
        "min_coverage": min_coverage, "min_sentence_freq": min_sentence_freq, "max_tokens": max_tokens,
        "wordfreq_min_freq": wordfreq_min_freq, "keep_text": plan.keep_text, "kept_by_reason": plan.reasons,
        "sources": plan.sources, "languages": languages,
    }
    return VocabPlanning(plan=plan, report=report, tokenizer=tokenizer, reduced_backend=reduced, config=config,
                         source_provenance=previous)


# ---------------------------------------------------------------------------------------------- write
def vocab_reduce(
    model_dir: str | Path,
    sentences: Sequence[str] | Iterable[str] | None = None,
    out: str | Path | None = None,
    *,
    sources: Sequence[TextSource | WordFreqSource] = (),
    heldout: Sequence[HeldoutText] = (),
    keep_text: Sequence[str] | None = None,
    min_sentence_freq: float = 0.0005,
    max_tokens: int | None = None,
    wordfreq_min_freq: float = 0.0,
    min_coverage: float | None = None,
    corpus_description: str = "custom corpus",
    overwrite: bool = False,
    report_path: str | Path | None = None,
    on_report: Callable[[dict], None] | None = None,
) -> VocabReduction:
    """Reduce the vocabulary of the model in ``model_dir`` to what the sources need; save to ``out``.

    ``on_report`` receives the plan's report (coverage, sizes) before anything is written;
    ``report_path`` gets it as JSON.
    """
    start = time.time()
    if out is not None:
        check_output_dir(out, overwrite)  # refuse before the slow work
    if report_path is not None:
        check_output_path(report_path, kind="file")

    name, model_dir = str(model_dir), resolve_model_dir(model_dir)  # a directory, or a hub id's snapshot
    planning = plan_vocab(name, sentences, sources=sources, heldout=heldout, keep_text=keep_text,
                          min_sentence_freq=min_sentence_freq, max_tokens=max_tokens,
                          wordfreq_min_freq=wordfreq_min_freq, min_coverage=min_coverage,
                          corpus_description=corpus_description)
    plan, report = planning.plan, planning.report
    if on_report is not None:
        on_report(report)
    if report_path is not None:
        atomic_write_json(report_path, report)
    cls = model_class(planning.config)
    try:
        model = cls.from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise PolydistillError(f"Could not load the weights of {name} as {cls.__name__}: "
                               f"{str(err).splitlines()[0][:200]}") from err
    model.eval()
    new_model = reduce_model(model, plan)
    record = _record(name, plan, report, model, new_model, corpus_description if sentences is not None else None,
                     sources)
    # A student's provenance (teacher, copied layers, ...) stays valid; only its size changes.
    previous = planning.source_provenance or Provenance()
    updates = {"parameters": record["params_after"]} if previous.parameters else {}
    if previous.task is None:  # so the card's pipeline tag names the head
        updates["task"] = "mlm" if type(model).__name__.endswith("ForMaskedLM") else task_of(model)
    provenance = previous.with_step("vocab_reduction", record, versions=package_versions(), **updates)
    path = None
    if out is not None:
        with save_model_dir(out, "vocab-reduce", model=new_model, source=name, overwrite=overwrite) as target:
            # the tokenizer: its config files with the reduced tokenizer.json
            new_tokenizer = save_tokenizer(planning.tokenizer, planning.reduced_backend, target.path)
            require(len(new_tokenizer) == plan.new_size,
                    f"Reduced tokenizer has {len(new_tokenizer)} tokens, expected {plan.new_size}.")
            copy_usage_files(model_dir, target.path)
            record["seconds"] = round(time.time() - start, 2)
            provenance = provenance.with_step("vocab_reduction", record)
            target.provenance = provenance
        path = Path(out)
    else:
        new_tokenizer = build_reduced_tokenizer(planning.tokenizer, plan)
        record["seconds"] = round(time.time() - start, 2)
    return VocabReduction(model=new_model, tokenizer=new_tokenizer, plan=plan, provenance=provenance, path=path,
                          report=report)


def _record(model_dir: str | Path, plan: VocabPlan, report: dict, model, new_model, description: str | None,
            sources) -> dict:
    descriptions = ([description] if description is not None else []) + [s.description for s in sources]
    record = {
        "source": str(model_dir),
        "tokenizer_model": plan.model_type,
        "corpus": {"description": "; ".join(descriptions), "sentences": plan.n_sentences,
                   "characters": plan.characters},
        "min_sentence_freq": report["min_sentence_freq"],
        "min_sentence_count": plan.min_count,
        "max_tokens": report["max_tokens"],
        "vocab_before": plan.old_size,
        "embedding_rows_before": model.get_input_embeddings().weight.shape[0],
        "vocab_after": plan.new_size,
        "removed": plan.old_size - plan.new_size,
        "kept_by_reason": plan.reasons,
        "fallback": FALLBACK_DOC[plan.model_type],
        "params_before": count_parameters(model).total,
        "params_after": count_parameters(new_model).total,
        "embedding_params_before": model.get_input_embeddings().weight.numel(),
        "embedding_params_after": new_model.get_input_embeddings().weight.numel(),
        "seconds": None,
        "languages": sorted(plan.languages),
        "sources": plan.sources,
        "keep_text": plan.keep_text,
        "min_coverage": plan.min_coverage,
        "wordfreq_min_freq": report["wordfreq_min_freq"],
        "selection": plan.languages,
        "coverage": list(summary_rows(report)),
    }
    record["params_reduction"] = round(1 - record["params_after"] / record["params_before"], 4)
    return record


__all__ = ["VocabPlan", "VocabPlanning", "VocabReduction", "build_reduced_tokenizer", "dataset_sentences",
           "plan_reduction", "plan_vocab", "read_corpus_files", "reduce_model", "reduce_tokenizer_json",
           "sentence_frequencies", "vocab_reduce"]

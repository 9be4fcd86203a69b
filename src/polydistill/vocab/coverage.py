"""VocabReduce, measuring: how much held-out text of each language tokenises exactly as with the full
vocabulary, before anything is written.

Definitions (per language, on held-out text tokenised *without* special tokens):

* a **word** is a pre-token (what the tokenizer's pre-tokenizer splits off: a whitespace word, or a
  punctuation run for BERT). Tokenisation works word by word, so a word is tokenised exactly as before
  **iff every piece of its full-vocabulary segmentation is kept** (Viterbi's best path, WordPiece's
  greedy longest match and BPE's merges with their derivations cannot change when only unused pieces
  disappear; a removed piece cannot appear);
* **token coverage** = share of the held-out tokens that belong to such words;
* **sentence coverage** = share of sentences all of whose tokens are kept (tokenised exactly as before);
* ``ids_kept`` = share of tokens whose id is kept at all (a looser number, ≥ token coverage).

Coverage is a monotone function of the kept set, so :func:`rank_cut` finds, for a ranked list of
candidate sub-words, the shortest prefix that reaches a target exactly (no search over thresholds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polydistill.vocab.sources import HeldoutText


@dataclass
class HeldoutEncoding:
    """Held-out sentences of one language, tokenised with the full vocabulary."""

    key: str
    description: str
    sentences: list[str]
    token_ids: np.ndarray  # all tokens of all sentences, in order
    word_starts: np.ndarray  # index of each word's first token
    sentence_words: np.ndarray  # index of each sentence's first word
    sentence_tokens: np.ndarray  # index of each sentence's first token

    @property
    def n_tokens(self) -> int:
        return int(len(self.token_ids))

    @property
    def n_sentences(self) -> int:
        return int(len(self.sentence_words))

    def word_lengths(self) -> np.ndarray:
        return np.diff(np.append(self.word_starts, self.n_tokens))


def encode_heldout(tokenizer, heldout: HeldoutText, key: str) -> HeldoutEncoding:
    """Tokenise ``heldout`` with the full vocabulary (no special tokens); empty sentences are dropped."""
    sentences = [s.strip() for s in heldout.sentences if s and s.strip()]
    encodings = tokenizer.backend_tokenizer.encode_batch(sentences, add_special_tokens=False) if sentences else []
    ids: list[int] = []
    word_starts: list[int] = []
    sentence_words: list[int] = []
    sentence_tokens: list[int] = []
    kept: list[str] = []
    for text, enc in zip(sentences, encodings, strict=True):
        if not enc.ids:
            continue
        kept.append(text)
        sentence_words.append(len(word_starts))
        sentence_tokens.append(len(ids))
        previous = object()
        for token, word in zip(enc.ids, enc.word_ids, strict=True):
            if word is None or word != previous:
                word_starts.append(len(ids))
            previous = word
            ids.append(token)
    return HeldoutEncoding(key=key, description=heldout.description, sentences=kept,
                           token_ids=np.asarray(ids, dtype=np.int64), word_starts=np.asarray(word_starts, dtype=np.int64),
                           sentence_words=np.asarray(sentence_words, dtype=np.int64),
                           sentence_tokens=np.asarray(sentence_tokens, dtype=np.int64))


def coverage(enc: HeldoutEncoding, kept_mask: np.ndarray) -> dict:
    """Token coverage, sentence coverage and the share of kept ids for a kept set (boolean mask over old ids)."""
    if enc.n_tokens == 0:
        return {"sentences": 0, "tokens": 0, "token_coverage": None, "sentence_coverage": None, "ids_kept": None}
    ok = kept_mask[enc.token_ids]
    word_ok = np.logical_and.reduceat(ok, enc.word_starts)
    sentence_ok = np.logical_and.reduceat(word_ok, enc.sentence_words)
    return {"sentences": enc.n_sentences, "tokens": enc.n_tokens,
            "token_coverage": float((word_ok * enc.word_lengths()).sum() / enc.n_tokens),
            "sentence_coverage": float(sentence_ok.mean()),
            "ids_kept": float(ok.mean())}


def rank_cut(enc: HeldoutEncoding, rank: np.ndarray, target: float) -> tuple[int | None, float]:
    """The smallest ``r`` such that keeping every candidate of rank < r (always-kept ids have rank −1,
    non-candidates +inf) gives token coverage ≥ ``target``; None if no ``r`` does. Also returns the
    highest coverage any ``r`` reaches."""
    if enc.n_tokens == 0:
        return 0, 1.0
    word_rank = np.maximum.reduceat(rank[enc.token_ids], enc.word_starts)
    lengths = enc.word_lengths()
    reachable = float(lengths[np.isfinite(word_rank)].sum() / enc.n_tokens)
    order = np.argsort(word_rank, kind="stable")
    covered = np.cumsum(lengths[order])
    need = math.ceil(target * enc.n_tokens - 1e-9)
    position = int(np.searchsorted(covered, need))
    if need <= 0:
        return 0, reachable
    if position >= len(covered) or not np.isfinite(word_rank[order][position]):
        return None, reachable
    return int(word_rank[order][position]) + 1, reachable


def measure_reduced(enc: HeldoutEncoding, reduced_backend, old_to_new: dict[int, int], unk_id: int | None) -> dict:
    """Tokenise the held-out text with the reduced tokenizer: tokens per sentence before / after, the
    share of <unk> tokens, and the measured share of sentences with identical (re-numbered) ids."""
    if enc.n_tokens == 0:
        return {}
    after = reduced_backend.encode_batch(enc.sentences, add_special_tokens=False)
    bounds = np.append(enc.sentence_tokens, enc.n_tokens)
    n_after = sum(len(e.ids) for e in after)
    unk = sum(e.ids.count(unk_id) for e in after) if unk_id is not None else 0
    same = 0
    for i, e in enumerate(after):
        old = enc.token_ids[bounds[i]:bounds[i + 1]].tolist()
        same += [old_to_new.get(t, -1) for t in old] == e.ids
    return {"tokens_per_sentence_before": round(enc.n_tokens / enc.n_sentences, 3),
            "tokens_per_sentence_after": round(n_after / enc.n_sentences, 3),
            "unk_share_after": round(unk / max(n_after, 1), 5),
            "sentences_identical_measured": same / enc.n_sentences}


# ------------------------------------------------------------------------------------------- the report
def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def render_report(report: dict, console=None) -> None:
    """The plan as rich tables on stdout: coverage per language, then sizes and sources."""
    from rich.console import Console, JustifyMethod
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: wide enough that the numbers stay on one line
            console = Console(width=120)
    languages = report.get("languages") or {}
    if languages:
        table = Table(title="Held-out text tokenised exactly as with the full vocabulary")
        columns: list[tuple[str, JustifyMethod]] = [
            ("language", "left"), ("held-out", "left"), ("sentences", "right"), ("token cov.", "right"),
            ("sentence cov.", "right"), ("ids kept", "right"), ("tokens/sent.", "right"), ("unk", "right")]
        for name, justify in columns:
            table.add_column(name, justify=justify)
        for key, row in languages.items():
            before, after = row.get("tokens_per_sentence_before"), row.get("tokens_per_sentence_after")
            table.add_row(key, row.get("heldout", ""), f"{row.get('sentences', 0):,}", _pct(row.get("token_coverage")),
                          _pct(row.get("sentence_coverage")), _pct(row.get("ids_kept")),
                          f"{before:.2f} → {after:.2f}" if before is not None else "–",
                          _pct(row.get("unk_share_after")))
        console.print(table)
    sizes = Table(title="Vocabulary and parameters")
    for name in ("", "before", "after", "after / before"):
        sizes.add_column(name, justify="left" if not name else "right")
    sizes.add_row("vocabulary", f"{report['vocab_before']:,}", f"{report['vocab_after']:,}",
                  _pct(report["vocab_after"] / report["vocab_before"]))
    sizes.add_row("parameters", f"{report['params_before']:,}", f"{report['params_after']:,}",
                  _pct(report["params_share"]))
    sizes.add_row("word embedding", f"{report['embedding_params_before']:,}", f"{report['embedding_params_after']:,}",
                  _pct(report["embedding_params_after"] / max(report["embedding_params_before"], 1)))
    if report.get("teacher_parameters"):
        sizes.add_row("share of the teacher", f"{report['teacher_parameters']:,}", f"{report['params_after']:,}",
                      _pct(report["params_share_of_teacher"]))
    console.print(sizes)
    sources = Table(title="Sources (the kept set is the union of every language's selection)")
    source_columns: list[tuple[str, JustifyMethod]] = [
        ("language", "left"), ("source", "left"), ("size", "right"), ("rule", "left"), ("selected", "right")]
    for name, justify in source_columns:
        sources.add_column(name, justify=justify)
    for source in report.get("sources", []):
        sources.add_row(source["language"], source["description"], f"{source['size']:,} {source['unit']}",
                        source["rule"], f"{source['selected']:,}")
    console.print(sources)
    console.print(f"kept by reason: {report['kept_by_reason']}" + (
        f"; always-kept texts: {report['keep_text']}" if report.get("keep_text") else ""))


def summary_rows(report: dict) -> Sequence[dict]:
    """Per-language coverage rows (for the provenance record)."""
    keys = ("sentences", "token_coverage", "sentence_coverage", "ids_kept", "tokens_per_sentence_before",
            "tokens_per_sentence_after", "unk_share_after")
    return [{"language": key, **{k: row.get(k) for k in keys}} for key, row in (report.get("languages") or {}).items()]


__all__ = ["HeldoutEncoding", "coverage", "encode_heldout", "measure_reduced", "rank_cut", "render_report",
           "summary_rows"]

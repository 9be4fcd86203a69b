"""Bootstrap confidence intervals for differences of F1 between runs (grid cells, compress models; pure numpy, seeded).

The test examples are resampled with replacement *within each language* (stratified: every
resample keeps each language's size), and the metric is recomputed on each resample: macro-F1 for
classification, seqeval micro entity F1 for NER. To make that a sum, every example is reduced once
to counts: classification per-class true / predicted / correct indicators, NER the sentence's gold,
predicted and correct entities (seqeval's entities, which never cross a sentence boundary, so the
entity F1 of any multiset of sentences is ``2·Σtp / (Σgold + Σpred)``). A resample is then a vector
of example counts and its metric a function of count-weighted sums.

- **paired** (:func:`paired_bootstrap`): two models scored on the *same* examples (checked: same
  languages, sizes, checksums of the examples' texts and gold labels); each resample is applied to
  both, which removes the example-difficulty variance from the difference.
- **several seeds**: the statistic is the difference of the seed-averaged F1; the examples are
  resampled once per resample and the same counts are applied to every seed's predictions.
- **unpaired** (:func:`unpaired_bootstrap`): two groups of different examples (seen vs unseen
  languages); each side is resampled separately.

The interval is the percentile interval of the resampled differences; :func:`verdict` reads it
against the claimed direction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polydistill.errors import PolydistillError

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
_CHUNK = 100  # resamples per matrix product (memory: chunk × examples floats)


# ---------------------------------------------------------------- metrics from counts


def ner_counts(gold_rows: Sequence[Sequence[int]], pred_rows: Sequence[Sequence[int]],
               label_names: Sequence[str]) -> np.ndarray:
    """Per sentence (gold entities, predicted entities, correct entities) as seqeval extracts them: (n, 3)."""
    from seqeval.metrics.sequence_labeling import get_entities

    out = np.zeros((len(gold_rows), 3), dtype=np.int64)
    for i, (gold, pred) in enumerate(zip(gold_rows, pred_rows, strict=True)):
        true_set = set(get_entities([label_names[t] for t in gold]))
        pred_set = set(get_entities([label_names[t] for t in pred]))
        out[i] = len(true_set), len(pred_set), len(true_set & pred_set)
    return out


def micro_f1(counts: np.ndarray) -> float:
    """seqeval's micro entity F1 of the sentences whose :func:`ner_counts` are ``counts``."""
    return float(_micro_from_sums(counts.sum(axis=0, keepdims=True).astype(float))[0])


def _micro_from_sums(sums: np.ndarray) -> np.ndarray:
    gold, pred, correct = sums[:, 0], sums[:, 1], sums[:, 2]
    denom = gold + pred
    return np.divide(2 * correct, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def _per_class(weights: np.ndarray, ids: np.ndarray, num_labels: int) -> np.ndarray:
    """Σ of each row of ``weights`` over the columns of each class of ``ids``: (rows, num_labels)."""
    out = np.zeros((weights.shape[0], num_labels))
    if len(ids):
        order = np.argsort(ids, kind="stable")
        classes, starts = np.unique(ids[order], return_index=True)
        out[:, classes] = np.add.reduceat(weights[:, order], starts, axis=1)
    return out


def _class_sums(weights: np.ndarray, gold: np.ndarray, pred: np.ndarray, num_labels: int):
    """Per resample (rows of ``weights``) and class: gold count, predicted count, correct count."""
    right = gold == pred
    return (_per_class(weights, gold, num_labels), _per_class(weights, pred, num_labels),
            _per_class(weights[:, right], gold[right], num_labels))


def _macro_from_sums(true: np.ndarray, pred: np.ndarray, correct: np.ndarray) -> np.ndarray:
    denom = true + pred
    present = denom > 0
    f1 = np.divide(2 * correct, denom, out=np.zeros_like(denom), where=present)
    n_present = present.sum(axis=1)
    return np.divide(f1.sum(axis=1), n_present, out=np.zeros(len(f1)), where=n_present > 0)


# ---------------------------------------------------------------- the examples of one run


def examples_checksum(texts: Sequence[str]) -> str:
    """Identity of an ordered list of test examples (16 hex digits of a SHA-256 over their texts)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LanguagePredictions:
    """Decoded predictions of one language of one eval group (NER: one int array per sentence)."""

    language: str
    checksum: str
    gold: Any  # np.ndarray (classification) or list of np.ndarray (NER)
    pred: Any

    @property
    def n(self) -> int:
        return len(self.gold)


@dataclass(frozen=True)
class GroupExamples:
    """One run's predictions on one eval group, pooled language by language (in a fixed order)."""

    label: str  # the run, for messages
    group: str
    task: str  # "sequence" | "token"
    num_labels: int
    languages: tuple[str, ...]
    sizes: tuple[int, ...]
    checksums: tuple[str, ...]
    gold_digest: str
    gold: np.ndarray | None = None  # classification: (n,) ids
    pred: np.ndarray | None = None
    counts: np.ndarray | None = None  # NER: (n, 3) gold / predicted / correct entities per sentence

    @property
    def n(self) -> int:
        return int(sum(self.sizes))

    def scores(self, weights: np.ndarray) -> np.ndarray:
        """The metric on each resample (a row of example counts) of ``weights``: (rows,)."""
        if self.task == "sequence":
            assert self.gold is not None and self.pred is not None  # classification groups keep both
            return _macro_from_sums(*_class_sums(weights, self.gold, self.pred, self.num_labels))
        assert self.counts is not None  # NER groups keep entity counts
        return _micro_from_sums(weights @ self.counts.astype(float))

    def full(self) -> float:
        return float(self.scores(np.ones((1, self.n)))[0])


def group_examples(task: str, label_names: Sequence[str], languages, label: str = "", group: str = "",
                   ) -> GroupExamples:
    """A :class:`GroupExamples` from decoded per-language predictions
    (:class:`LanguagePredictions`), languages sorted by code."""
    languages = sorted(languages, key=lambda x: x.language)
    digest = hashlib.sha256()
    for lp in languages:
        for row in lp.gold if task != "sequence" else [lp.gold]:
            digest.update(np.asarray(row, dtype="<i8").tobytes())
            digest.update(b"|")
    common: dict[str, Any] = dict(
        label=label, group=group, task=task, num_labels=len(label_names),
        languages=tuple(lp.language for lp in languages), sizes=tuple(lp.n for lp in languages),
        checksums=tuple(lp.checksum for lp in languages), gold_digest=digest.hexdigest()[:16])
    if task == "sequence":
        gold = np.concatenate([np.asarray(lp.gold, dtype=np.int64) for lp in languages]) if languages else \
            np.zeros(0, dtype=np.int64)
        pred = np.concatenate([np.asarray(lp.pred, dtype=np.int64) for lp in languages]) if languages else \
            np.zeros(0, dtype=np.int64)
        return GroupExamples(**common, gold=gold, pred=pred)
    counts = np.concatenate([ner_counts(lp.gold, lp.pred, label_names) for lp in languages]) if languages else \
        np.zeros((0, 3), dtype=np.int64)
    return GroupExamples(**common, counts=counts)


def check_paired(runs: Sequence[GroupExamples]) -> None:
    """Refuse (one sentence) runs that were not scored on the same test examples in the same order."""
    first = runs[0]
    for other in runs[1:]:
        problem = None
        if other.task != first.task:
            problem = f"one is a {first.task} task, the other a {other.task} task"
        elif other.languages != first.languages:
            problem = f"languages {', '.join(first.languages)} vs {', '.join(other.languages)}"
        elif other.sizes != first.sizes:
            lang = next(la for la, a, b in zip(first.languages, first.sizes, other.sizes, strict=True) if a != b)
            problem = f"{lang} has {dict(zip(first.languages, first.sizes, strict=True))[lang]} vs " \
                      f"{dict(zip(other.languages, other.sizes, strict=True))[lang]} examples"
        elif other.checksums != first.checksums:
            lang = next(la for la, a, b in zip(first.languages, first.checksums, other.checksums, strict=True)
                        if a != b)
            problem = f"checksum mismatch of the {lang} examples"
        elif other.gold_digest != first.gold_digest:
            problem = "same texts but different gold labels"
        if problem:
            raise PolydistillError(
                f"Cannot pair {first.label or 'a run'} with {other.label or 'another run'} on eval group "
                f"{first.group or '?'}: their test examples differ ({problem}), so re-evaluate both on the same "
                "capped test split (same data, languages and max_eval_per_language).")


# ---------------------------------------------------------------- resampling


def resample_counts(sizes: Sequence[int], n_resamples: int, rng: np.random.Generator,
                    chunk: int = _CHUNK) -> Iterator[np.ndarray]:
    """Stratified bootstrap resamples as example counts, ``chunk`` rows at a time: each row draws
    ``sizes[k]`` examples with replacement from language k's block (so every language keeps its size)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    total = int(offsets[-1])
    done = 0
    while done < n_resamples:
        rows = min(chunk, n_resamples - done)
        counts = np.zeros((rows, total))
        for start, size in zip(offsets[:-1], sizes, strict=True):
            if size == 0:
                continue
            draws = rng.integers(0, size, size=(rows, size))
            flat = (np.arange(rows)[:, None] * size + draws).ravel()
            counts[:, start:start + size] = np.bincount(flat, minlength=rows * size).reshape(rows, size)
        yield counts
        done += rows


@dataclass(frozen=True)
class Interval:
    """A difference of (seed-averaged) F1, A − B, as a fraction, with its bootstrap interval."""

    difference: float
    low: float
    high: float
    n_a: int
    n_b: int
    seeds_a: int
    seeds_b: int
    paired: bool
    resamples: int
    confidence: float = CONFIDENCE

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)


def verdict(low: float, high: float) -> str:
    """For a claim "A > B" read on the interval of A − B: ``supported`` when it lies above 0,
    ``contradicted`` when it lies below 0, ``inconclusive`` when it contains 0."""
    if low > 0:
        return "supported"
    if high < 0:
        return "contradicted"
    return "inconclusive"


def _mean_score(runs: Sequence[GroupExamples], weights: np.ndarray) -> np.ndarray:
    return np.mean([run.scores(weights) for run in runs], axis=0)


def _percentiles(diffs: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return float(low), float(high)


def _check_args(a: Sequence[GroupExamples], b: Sequence[GroupExamples], n_resamples: int, confidence: float):
    if not a or not b:
        raise PolydistillError("A bootstrap needs at least one run on each side of the difference.")
    if n_resamples < 1:
        raise PolydistillError(f"The number of bootstrap resamples must be at least 1, got {n_resamples}.")
    if not 0 < confidence < 1:
        raise PolydistillError(f"The confidence level must lie strictly between 0 and 1, got {confidence}.")


def paired_bootstrap(a: Sequence[GroupExamples], b: Sequence[GroupExamples], n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> Interval:
    """mean-over-seeds F1(A) − mean-over-seeds F1(B) on the same examples, stratified by language;
    every resample is applied to every run of both sides."""
    _check_args(a, b, n_resamples, confidence)
    return contrast_bootstrap([(1.0, a), (-1.0, b)], n_resamples, seed, confidence)


def contrast_bootstrap(terms: Sequence[tuple[float, Sequence[GroupExamples]]], n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE, constant: float = 0.0) -> Interval:
    """Σ weight · mean-over-seeds F1(side) + ``constant`` for sides scored on the same examples (a paired
    bootstrap of a linear contrast, e.g. the difference of two differences); every resample is applied to
    every run of every side. ``constant``: a fixed term (a baseline's F1, as a fraction)."""
    if not terms or any(not runs for _, runs in terms):
        raise PolydistillError("A bootstrap contrast needs at least one run on each of its sides.")
    _check_args(terms[0][1], terms[-1][1], n_resamples, confidence)
    check_paired([run for _, runs in terms for run in runs])
    first = terms[0][1][0]
    n = first.n

    def value(weights: np.ndarray) -> np.ndarray:
        total = np.zeros(len(weights))
        for weight, runs in terms:
            total = total + weight * _mean_score(runs, weights)
        return total + constant

    point = float(value(np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([value(w) for w in resample_counts(first.sizes, n_resamples, rng)])
    low, high = _percentiles(diffs, confidence)
    seeds = [len(runs) for _, runs in terms]
    return Interval(point, low, high, n, n, seeds[0], seeds[-1] if len(seeds) > 1 else seeds[0], True,
                    n_resamples, confidence)


def unpaired_bootstrap(a: Sequence[GroupExamples], b: Sequence[GroupExamples], n_resamples: int = DEFAULT_RESAMPLES,
                       seed: int = DEFAULT_SEED, confidence: float = CONFIDENCE) -> Interval:
    """F1(A) − F1(B) for two groups of *different* examples (e.g. seen vs unseen languages): each side
    is resampled on its own (stratified by language); the runs of one side share its resamples."""
    _check_args(a, b, n_resamples, confidence)
    check_paired(a)
    check_paired(b)
    point = float(_mean_score(a, np.ones((1, a[0].n)))[0] - _mean_score(b, np.ones((1, b[0].n)))[0])
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([_mean_score(a, wa) - _mean_score(b, wb) for wa, wb in zip(
        resample_counts(a[0].sizes, n_resamples, rng), resample_counts(b[0].sizes, n_resamples, rng), strict=True)])
    low, high = _percentiles(diffs, confidence)
    return Interval(point, low, high, a[0].n, b[0].n, len(a), len(b), False, n_resamples, confidence)

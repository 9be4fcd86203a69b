"""Stratified training subsets per language and label (Wibowo et al. 2024, §5.2: 1 %, 5 %, 10 %, 20 %).

The rule, for a fraction f and one language with n examples in strata s of size n_s:

1. k_s = round(f · n_s) (half rounds up), capped at n_s.
2. If f · n ≥ S, the number of strata present in that language ("the fraction allows at least one
   example of each"), every stratum keeps at least one example: k_s = max(1, k_s). So no label that
   exists in a language is dropped once the budget covers one per label; the total can exceed f · n
   by at most S examples.
3. Otherwise k_s = round(f · n_s) as is, but a language never ends up empty: if all k_s are 0, the
   largest stratum gives one example.
4. Within a (language, stratum) the examples are a seeded permutation, fixed by (seed, language,
   stratum) and taken from the front: the subset is deterministic, does not depend on which other
   languages were loaded, and a smaller fraction's subset is contained in a larger one's (same seed).

Strata: the label for classification; for NER the rarest entity type in the sentence (rarest by
sentence count in that language), ``O`` when the sentence has no entity, so rare types are kept.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter, defaultdict

import numpy as np

from polydistill.errors import PolydistillError


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _stable(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def check_fraction(fraction: float) -> float:
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise PolydistillError(f"fraction must be in (0, 1], e.g. 0.01 for 1 %; got {fraction!r}.")
    return float(fraction)


def allocate(counts: dict[str, int], fraction: float) -> dict[str, int]:
    """How many examples each stratum of one language keeps (rules 1-3 above)."""
    n = sum(counts.values())
    keep = {s: min(c, _round(fraction * c)) for s, c in counts.items()}
    if fraction * n >= len(counts):
        keep = {s: max(1, k) for s, k in keep.items()}
    elif n and not any(keep.values()):
        largest = max(sorted(counts), key=lambda s: counts[s])
        keep[largest] = 1
    return keep


def entity_type(tag_name: str) -> str:
    return tag_name[2:] if tag_name[:2] in ("B-", "I-") else "O"


def strata_of(task: str, labels: list, languages: list[str], label_names: list[str]) -> list[str]:
    """One stratum name per example (see module docstring)."""
    if task == "sequence":
        return [label_names[y] for y in labels]
    types = [{entity_type(label_names[t]) for t in row} - {"O"} for row in labels]
    frequency: dict[str, Counter] = defaultdict(Counter)
    for lang, kinds in zip(languages, types, strict=True):
        frequency[lang].update(kinds)
    return [min(kinds, key=lambda k: (frequency[lang][k], k)) if kinds else "O"
            for lang, kinds in zip(languages, types, strict=True)]


def stratified_indices(strata: list[str], languages: list[str], fraction: float, seed: int = 0) -> list[int]:
    """Sorted row indices of the subset."""
    fraction = check_fraction(fraction)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (lang, stratum) in enumerate(zip(languages, strata, strict=True)):
        groups[(lang, stratum)].append(i)
    chosen: list[int] = []
    for lang in sorted({lang for lang, _ in groups}):
        counts = {s: len(rows) for (lg, s), rows in groups.items() if lg == lang}
        for stratum, k in allocate(counts, fraction).items():
            rows = groups[(lang, stratum)]
            rng = np.random.default_rng([seed, _stable(lang), _stable(stratum)])
            order = rng.permutation(len(rows))[:k]
            chosen.extend(rows[j] for j in order)
    return sorted(chosen)


def stratified_subset(dataset, task: str, label_names: list[str], fraction: float, seed: int = 0):
    """The stratified subset of a ``datasets.Dataset`` in our schema (rows keep their order)."""
    if check_fraction(fraction) == 1.0:
        return dataset
    labels = dataset["label" if task == "sequence" else "tags"]
    languages = dataset["language"]
    strata = strata_of(task, list(labels), list(languages), label_names)
    return dataset.select(stratified_indices(strata, list(languages), fraction, seed))


def cap_per_language(dataset, limit: int | None, seed: int = 0):
    """At most ``limit`` examples per language, chosen by a fixed shuffle (the same for every run with
    ``seed``); ``None`` keeps everything. Evaluation caps keep CPU-scale dev/test passes short."""
    if limit is None or len(dataset) == 0:
        return dataset
    shuffled = dataset.shuffle(seed=seed)
    counts: dict[str, int] = {}
    keep = []
    for i, lang in enumerate(shuffled["language"]):
        if counts.get(lang, 0) < limit:
            counts[lang] = counts.get(lang, 0) + 1
            keep.append(i)
    return shuffled.select(sorted(keep))

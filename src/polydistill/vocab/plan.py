"""VocabReduce, planning: which sub-words to keep.

Each source (a corpus, one language of a dataset, one wordfreq list) ranks the sub-words it uses and
selects some of them with its own rule; the kept set is the **union over languages** (each language
with its own threshold, so a large language cannot push a small one's sub-words under the bar), plus
what is always kept:

* **sentence sources** (Eliquare, Singh et al. 2023, §5): a sub-word is selected if it occurs in at least
  ``min_sentence_freq`` of the source's sentences (at least one sentence), optionally capped at the
  ``max_tokens`` most frequent;
* **wordfreq sources**: the frequency of a sub-word is the total frequency (share of running words) of
  the listed words whose tokenisation uses it; it is selected if that mass is ≥ ``wordfreq_min_freq``
  (default 0: every sub-word of the listed top words). A sentence of L words contains a sub-word of
  word-frequency f with probability ≈ 1 − (1 − f)^L ≈ L·f, so the Eliquare 0.05 % sentence frequency
  corresponds to f ≈ 0.0005 / L (2.5e-5 at L = 20 words);
* **coverage targeting** (``min_coverage``) replaces the thresholds: per language, the sources' ranked
  lists are merged by rank (a sub-word's rank is its best rank in any of that language's sources) and
  the shortest prefix whose held-out token coverage reaches the target is kept (exactly, see
  :func:`polydistill.vocab.coverage.rank_cut`); the equivalent per-source thresholds are recorded;
* **always**: special / added tokens and unk, the pieces of the always-kept texts (prompt prefixes such
  as e5's ``query: ``), and the character fallback of every character the sources use (tokenizer
  family rules below), so any input still tokenises.

Fallback per family: Unigram keeps every single-character piece of a source character and ``▁`` (or
the 256 ``<0xXX>`` pieces with byte fallback); WordPiece keeps ``c`` and ``##c``; BPE keeps its
alphabet (all 256 symbols when byte-level) and every token on the merge derivation of a kept token.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from polydistill.errors import PolydistillError, require
from polydistill.vocab.coverage import HeldoutEncoding, coverage, rank_cut
from polydistill.vocab.sources import TextSource, WordFreqSource, language_key
from polydistill.vocab.tokenizer import (
    BYTE_LEVEL_ALPHABET_SIZE,
    backend_json,
    is_byte_level,
    merge_pairs,
    model_vocab,
)

# Characters a word list never shows but every language's text uses: kept with a wordfreq source.
COMMON_CHARACTERS = frozenset(string.digits + string.punctuation)


@dataclass
class VocabPlan:
    """Which old ids survive; new id i is ``kept_ids[i]`` (old order kept, so ids are contiguous)."""

    model_type: str
    old_size: int
    kept_ids: list[int]
    n_sentences: int
    min_count: int | None
    reasons: dict[str, int] = field(default_factory=dict)  # kept tokens by reason (frequent, special, ...)
    sources: list[dict] = field(default_factory=list)  # per source: language, rule, size, selected
    languages: dict[str, dict] = field(default_factory=dict)  # per language: sources, rank cut (targeting)
    keep_text: list[str] = field(default_factory=list)
    characters: int = 0
    min_coverage: float | None = None

    @property
    def old_to_new(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept_ids)}

    @property
    def new_size(self) -> int:
        return len(self.kept_ids)

    def kept_mask(self) -> np.ndarray:
        mask = np.zeros(self.old_size, dtype=bool)
        mask[self.kept_ids] = True
        return mask


@dataclass
class Candidates:
    """The sub-words one source uses, ranked (most frequent first), and the ones its rule selects."""

    kind: str  # corpus | dataset | wordfreq
    key: str  # language key
    description: str
    size: int  # sentences or words
    unit: str
    ranked: list[int]
    score: dict[int, float]
    selected: set[int]
    rule: str
    chars: set[str]
    min_count: int | None = None


# --------------------------------------------------------------------------------------------- counting
def _normalizer(tokenizer):
    normalizer = tokenizer.backend_tokenizer.normalizer
    return (lambda text: normalizer.normalize_str(text)) if normalizer is not None else (lambda text: text)


def sentence_frequencies(tokenizer, sentences: Iterable[str], batch_size: int = 1000) -> tuple[Counter, int, set]:
    """Per token id, in how many sentences it occurs; the sentence count; the set of normalised characters."""
    counts: Counter = Counter()
    chars: set[str] = set()
    normalize = _normalizer(tokenizer)
    n = 0
    batch: list[str] = []

    def flush():
        nonlocal n
        for enc in tokenizer.backend_tokenizer.encode_batch(batch, add_special_tokens=False):
            counts.update(set(enc.ids))
        for text in batch:
            chars.update(normalize(text))
        n += len(batch)
        batch.clear()

    for sentence in sentences:
        sentence = sentence.strip()
        if sentence:
            batch.append(sentence)
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()
    require(n > 0, "The corpus is empty; pass --corpus files with one sentence per line or a --dataset.")
    chars.discard(" ")
    return counts, n, chars


def _ranked(score: dict[int, float]) -> list[int]:
    return sorted(score, key=lambda i: (-score[i], i))


def count_candidates(counts: Counter, n: int, chars: set[str], min_sentence_freq: float, max_tokens: int | None,
                     *, key: str = "text", description: str = "custom corpus", kind: str = "corpus") -> Candidates:
    """The Eliquare rule on sentence counts: occurs in ≥ ``min_sentence_freq`` of the sentences (≥ 1)."""
    min_count = max(1, math.ceil(min_sentence_freq * n - 1e-9))
    ranked = _ranked(dict(counts))
    selected = [i for i in ranked if counts[i] >= min_count]
    if max_tokens is not None:
        selected = selected[:max_tokens]
    rule = f"sentence freq ≥ {min_sentence_freq:g} (≥ {min_count:,} sentences)" + (
        f", top {max_tokens:,}" if max_tokens is not None else "")
    return Candidates(kind=kind, key=key, description=description, size=n, unit="sentences", ranked=ranked,
                      score={i: float(c) for i, c in counts.items()}, selected=set(selected), rule=rule, chars=chars,
                      min_count=min_count)


def text_candidates(tokenizer, source: TextSource, min_sentence_freq: float, max_tokens: int | None) -> Candidates:
    counts, n, chars = sentence_frequencies(tokenizer, source.sentences)
    return count_candidates(counts, n, chars, min_sentence_freq, max_tokens, key=language_key(source.label),
                            description=source.description, kind=source.kind)


def wordfreq_candidates(tokenizer, source: WordFreqSource, min_freq: float, byte_level: bool) -> Candidates:
    """Sub-words of the listed words, each scored by the total frequency of the words that use it."""
    words = [w for w, _ in source.words]
    freqs = [f for _, f in source.words]
    encodings = tokenizer.backend_tokenizer.encode_batch(words, add_special_tokens=False)
    if byte_level:  # mid-sentence words carry their leading space (Ġ) in byte-level BPE
        encodings = [(a, b) for a, b in zip(encodings, tokenizer.backend_tokenizer.encode_batch(
            [" " + w for w in words], add_special_tokens=False), strict=True)]
    mass: dict[int, float] = {}
    for enc, freq in zip(encodings, freqs, strict=True):
        ids = set(enc[0].ids) | set(enc[1].ids) if byte_level else set(enc.ids)
        for i in ids:
            mass[i] = mass.get(i, 0.0) + freq
    normalize = _normalizer(tokenizer)
    chars = {c for w in words for c in normalize(w)} | set(COMMON_CHARACTERS)
    chars.discard(" ")
    selected = {i for i, m in mass.items() if m >= min_freq}
    rule = f"word-frequency mass ≥ {min_freq:g}" if min_freq > 0 else "every sub-word of the listed words"
    return Candidates(kind="wordfreq", key=language_key(source.label), description=source.description,
                      size=source.selection.get("words", len(words)), unit="words", ranked=_ranked(mass), score=mass,
                      selected=selected, rule=rule, chars=chars)


# ---------------------------------------------------------------------------------------------- always
def _bpe_alphabet(backend: dict, piece_id: dict[str, int], chars: set[str]) -> set[int]:
    """Byte-level BPE needs its whole 256-symbol alphabet; character BPE the source characters."""
    if is_byte_level(backend):
        from tokenizers.pre_tokenizers import ByteLevel

        alphabet = ByteLevel.alphabet()
        require(len(alphabet) == BYTE_LEVEL_ALPHABET_SIZE, "Unexpected byte-level alphabet size.")
        return {piece_id[c] for c in alphabet if c in piece_id}
    suffix = backend["model"].get("end_of_word_suffix") or ""
    prefix = backend["model"].get("continuing_subword_prefix") or ""
    out = set()
    for c in chars:
        for piece in (c, prefix + c, c + suffix):
            if piece in piece_id:
                out.add(piece_id[piece])
    return out


def _bpe_closure(kept: set[int], pieces: list[str], piece_id: dict[str, int], merges) -> set[int]:
    """All tokens on the merge paths that build the kept tokens (a BPE token is reachable only through them)."""
    parents: dict[str, tuple[str, str]] = {}
    for a, b in merges:
        parents.setdefault(a + b, (a, b))
    out, stack = set(kept), [pieces[i] for i in kept if i < len(pieces)]
    while stack:
        piece = stack.pop()
        for part in parents.get(piece, ()):
            pid = piece_id.get(part)
            if pid is not None and pid not in out:
                out.add(pid)
                stack.append(part)
    return out


def _fallback(kind: str, model_json: dict, backend: dict, piece_id: dict[str, int], chars: set[str]) -> set[int]:
    fallback: set[int] = set()
    if kind == "Unigram":
        if model_json.get("byte_fallback"):
            fallback |= {piece_id[f"<0x{b:02X}>"] for b in range(256) if f"<0x{b:02X}>" in piece_id}
        for c in chars | {"\u2581"}:
            if c in piece_id:
                fallback.add(piece_id[c])
    elif kind == "WordPiece":
        prefix = model_json.get("continuing_subword_prefix", "##")
        for c in chars:
            for piece in (c, prefix + c):
                if piece in piece_id:
                    fallback.add(piece_id[piece])
    elif kind == "BPE":
        fallback |= _bpe_alphabet(backend, piece_id, chars)
    return fallback


@dataclass
class _Vocabulary:
    kind: str
    model_json: dict
    backend: dict
    pieces: list[str]
    piece_id: dict[str, int]
    old_size: int
    special: set[int]


def _vocabulary(tokenizer) -> _Vocabulary:
    backend = backend_json(tokenizer)
    model_json = backend["model"]
    pieces = model_vocab(model_json)
    added = {t["id"] for t in backend.get("added_tokens", [])}
    old_size = max([len(pieces) - 1, *added]) + 1
    require(
        set(range(len(pieces), old_size)) <= added,
        "The tokenizer's added tokens leave gaps after the model vocabulary; it cannot be reduced safely.",
    )
    special = added | set(tokenizer.all_special_ids)
    if tokenizer.unk_token_id is not None:
        special.add(tokenizer.unk_token_id)
    return _Vocabulary(kind=model_json["type"], model_json=model_json, backend=backend, pieces=pieces,
                       piece_id={p: i for i, p in enumerate(pieces)}, old_size=old_size, special=special)


# ---------------------------------------------------------------------------------------------- planning
def _check_threshold(cand: Candidates, special: set[int], option: str, value: float) -> None:
    if cand.selected - special:
        return
    best = next((i for i in cand.ranked if i not in special), None)
    if cand.unit == "sentences":
        top = f"the most frequent occurs in {int(cand.score[best]):,} of {cand.size:,} sentences " \
              f"({cand.score[best] / cand.size:.2%})" if best is not None else "it has no sub-words"
    else:
        top = f"the largest mass is {cand.score[best]:.2g}" if best is not None else "it has no sub-words"
    raise PolydistillError(f"{option} {value:g} keeps no sub-word of {cand.description} ({top}); lower it.")


def _equivalent(cand: Candidates, cut: int) -> dict:
    """The threshold of ``cand``'s own rule that selects its top ``cut`` sub-words."""
    if cut <= 0 or not cand.ranked:
        return {"selected": 0}
    last = cand.ranked[min(cut, len(cand.ranked)) - 1]
    if cand.unit == "sentences":
        count = int(cand.score[last])
        return {"selected": min(cut, len(cand.ranked)), "min_sentence_count": count,
                "min_sentence_freq": round(count / cand.size, 6)}
    return {"selected": min(cut, len(cand.ranked)), "min_word_freq": float(f"{cand.score[last]:.3g}")}


def _always_kept_parts(tokenizer, voc: _Vocabulary, candidates: Sequence[Candidates], kept_texts: list[str],
                       ) -> tuple[set[int], set[str], set[int]]:
    """(the kept texts' token ids, the characters the sources and kept texts use, their character fallback)."""
    normalize = _normalizer(tokenizer)
    text_ids: set[int] = set()
    chars: set[str] = set().union(*(c.chars for c in candidates))
    for text in kept_texts:
        text_ids |= set(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)
        chars |= set(normalize(text))
    chars.discard(" ")
    return text_ids, chars, _fallback(voc.kind, voc.model_json, voc.backend, voc.piece_id, chars)


def _select_by_thresholds(candidates: Sequence[Candidates], by_key: dict[str, list[Candidates]], special: set[int],
                          thresholds: dict[str, float]) -> tuple[list[set[int]], dict[str, dict]]:
    """(each source's own selection, the per-language record) under the sources' thresholds."""
    selected_by_cand: list[set[int]] = []
    for cand in candidates:
        option, value = (("--wordfreq-min-freq", thresholds.get("wordfreq_min_freq", 0.0)) if cand.kind == "wordfreq"
                         else ("--min-sentence-freq", thresholds.get("min_sentence_freq", 0.0)))
        _check_threshold(cand, special, option, value)
        selected_by_cand.append(set(cand.selected))
    languages = {key: {"sources": [c.description for c in cands], "rule": "thresholds"} for key, cands in by_key.items()}
    return selected_by_cand, languages


def _select_by_coverage(candidates: Sequence[Candidates], by_key: dict[str, list[Candidates]],
                        heldout: Sequence[HeldoutEncoding], voc: _Vocabulary, always: set[int], min_coverage: float,
                        ) -> tuple[list[set[int]], dict[str, dict]]:
    """(each source's selection, the per-language record) when each language keeps the shortest prefix of its
    merged ranking that reaches ``min_coverage`` on its held-out text."""
    held = {enc.key: enc for enc in heldout}
    missing = [key for key in by_key if key not in held or held[key].n_tokens == 0]
    require(not missing, f"--min-coverage needs held-out text for every language; {', '.join(missing)} has none "
                         "(give --dataset, or --heldout LANG=FILE with LANG as in the sources).")
    selected_by_cand: list[set[int]] = [set() for _ in candidates]
    languages: dict[str, dict] = {}
    index = {id(c): n for n, c in enumerate(candidates)}
    always_rank = np.array(sorted(i for i in always if i < voc.old_size), dtype=np.int64)
    for key, cands in by_key.items():
        rank = np.full(voc.old_size, np.inf)
        for cand in cands:
            ids = np.asarray([i for i in cand.ranked if i < voc.old_size], dtype=np.int64)
            if len(ids):
                rank[ids] = np.minimum(rank[ids], np.arange(len(ids), dtype=float))
        rank[always_rank] = -1
        cut, reachable = rank_cut(held[key], rank, min_coverage)
        if cut is None:
            raise PolydistillError(
                f"The sources of {key} reach at most {reachable:.2%} token coverage on {held[key].description}, "
                f"below --min-coverage {min_coverage:g}; add text of that language (--corpus, --wordfreq) "
                "or lower --min-coverage.")
        for cand in cands:
            selected_by_cand[index[id(cand)]] = set(cand.ranked[:cut])
        languages[key] = {"sources": [c.description for c in cands], "rule": f"token coverage ≥ {min_coverage:g}",
                          "rank_cut": cut, "reachable": round(reachable, 5),
                          "equivalent_thresholds": {c.description: _equivalent(c, cut) for c in cands}}
    return selected_by_cand, languages


def _kept_and_reasons(candidates: Sequence[Candidates], selected_by_cand: list[set[int]], voc: _Vocabulary,
                      text_ids: set[int], fallback: set[int], has_keep_text: bool,
                      ) -> tuple[list[int], dict[str, set[int]]]:
    """(the kept ids, sorted; the ids each reason adds to those of the reasons before it)."""
    frequent = set().union(*(s for s, c in zip(selected_by_cand, candidates, strict=True) if c.kind != "wordfreq"))
    wordfreq = set().union(*(s for s, c in zip(selected_by_cand, candidates, strict=True) if c.kind == "wordfreq"))
    reasons: dict[str, set[int]] = {"frequent": frequent}
    if any(c.kind == "wordfreq" for c in candidates):
        reasons["wordfreq"] = wordfreq - frequent
    reasons["special"] = voc.special
    if has_keep_text:
        reasons["keep text"] = text_ids - frequent - wordfreq - voc.special
    reasons["character fallback"] = fallback - voc.special - frequent - wordfreq - text_ids
    kept = frequent | wordfreq | voc.special | fallback | text_ids
    if voc.kind == "BPE":
        closure = _bpe_closure(kept, voc.pieces, voc.piece_id, merge_pairs(voc.model_json))
        reasons["merge derivation"] = closure - kept
        kept |= closure
    return sorted(i for i in kept if i < voc.old_size), reasons


def plan_vocabulary(
    tokenizer,
    candidates: Sequence[Candidates],
    *,
    keep_text: Sequence[str] = (),
    min_coverage: float | None = None,
    heldout: Sequence[HeldoutEncoding] = (),
    thresholds: dict[str, float] | None = None,
) -> VocabPlan:
    """Combine the sources' candidates into the kept set (union over languages + always-kept tokens)."""
    require(candidates, "Give at least one vocabulary source: --corpus FILE..., --dataset NAME --languages L, "
                        "or --wordfreq LANG.")
    require(min_coverage is None or 0 < min_coverage <= 1,
            f"--min-coverage must be a fraction in (0, 1], not {min_coverage}.")
    voc = _vocabulary(tokenizer)
    kept_texts = [t for t in dict.fromkeys(keep_text) if t]
    text_ids, chars, fallback = _always_kept_parts(tokenizer, voc, candidates, kept_texts)
    always = voc.special | fallback | text_ids

    by_key: dict[str, list[Candidates]] = {}
    for cand in candidates:
        by_key.setdefault(cand.key, []).append(cand)
    if min_coverage is None:
        selected_by_cand, languages = _select_by_thresholds(candidates, by_key, voc.special, thresholds or {})
    else:
        selected_by_cand, languages = _select_by_coverage(candidates, by_key, heldout, voc, always, min_coverage)
    kept_ids, reasons = _kept_and_reasons(candidates, selected_by_cand, voc, text_ids, fallback, bool(kept_texts))

    sources = [{"language": c.key, "kind": c.kind, "description": c.description, "size": c.size, "unit": c.unit,
                "rule": (languages[c.key]["rule"] if min_coverage is not None else c.rule),
                "candidates": len(c.ranked), "selected": len(s)}
               for c, s in zip(candidates, selected_by_cand, strict=True)]
    text_cands = [c for c in candidates if c.unit == "sentences"]
    return VocabPlan(model_type=voc.kind, old_size=voc.old_size, kept_ids=kept_ids,
                     n_sentences=sum(c.size for c in text_cands),
                     min_count=text_cands[0].min_count if text_cands else None,
                     reasons={k: len(v) for k, v in reasons.items()}, sources=sources, languages=languages,
                     keep_text=kept_texts, characters=len(chars), min_coverage=min_coverage)


def plan_reduction(
    tokenizer,
    counts: Counter,
    n_sentences: int,
    chars: set[str],
    min_sentence_freq: float = 0.0005,
    max_tokens: int | None = None,
) -> VocabPlan:
    """One sentence source's plan from its counts (see :func:`sentence_frequencies`)."""
    check_sentence_options(min_sentence_freq, max_tokens)
    cand = count_candidates(counts, n_sentences, chars, min_sentence_freq, max_tokens)
    return plan_vocabulary(tokenizer, [cand], thresholds={"min_sentence_freq": min_sentence_freq})


def check_sentence_options(min_sentence_freq: float, max_tokens: int | None) -> None:
    require(0.0 <= min_sentence_freq <= 1.0, f"--min-sentence-freq must be a fraction in [0, 1], not {min_sentence_freq}.")
    require(max_tokens is None or max_tokens > 0, f"--max-tokens must be positive, not {max_tokens}.")


def plan_coverage(plan: VocabPlan, heldout: Sequence[HeldoutEncoding]) -> dict[str, dict]:
    """Coverage of each held-out language under the plan's kept set."""
    mask = plan.kept_mask()
    return {enc.key: {"heldout": enc.description, **coverage(enc, mask)} for enc in heldout}


__all__ = ["COMMON_CHARACTERS", "Candidates", "VocabPlan", "check_sentence_options", "count_candidates",
           "plan_coverage", "plan_reduction", "plan_vocabulary", "sentence_frequencies", "text_candidates",
           "wordfreq_candidates"]

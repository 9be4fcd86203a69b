"""VocabReduce, where the vocabulary comes from: corpora, task data and word-frequency lists, each tagged
with a language, plus the held-out text the coverage report measures on.

* :class:`TextSource` — sentences (a ``--corpus`` file: plain text one sentence a line, JSONL with a
  ``"text"`` field, or a ``datasets`` folder with a ``text`` column; or the *inputs* of a dataset's splits,
  never its labels; NER tokens joined by spaces). Selection rule: sentence frequency (Eliquare).
* :class:`WordFreqSource` — the most frequent words of a language from the ``wordfreq`` package, each with
  its frequency (share of running words). Selection rule: frequency mass of the words using a sub-word.
* :class:`HeldoutText` — text the reduction is *measured* on (coverage), never selected from.

Every item has a language label; :func:`language_key` turns labels into one key per language
(``english``, ``en-US`` and ``en`` are all ``en``; ``tl-PH`` is ``fil``), so the sources and held-out
text of one language meet, whatever dataset spelled them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from polydistill.data.languages import iso_language
from polydistill.data.load import load_task_data
from polydistill.errors import PolydistillError, require
from polydistill.io import check_utf8_text

UNLABELLED = "text"  # the language key of corpora / held-out files given without LANG=
DATASET_SPLITS = ("train", "validation", "test")
DEFAULT_WORDFREQ_WORDS = 50_000
# ISO codes whose wordfreq list is filed under another code.
_SAME_LANGUAGE = {"tl": "fil", "no": "nb"}  # Tagalog is wordfreq's Filipino; Norwegian -> Bokmål
_WORDFREQ_CODE = {"sr": "sh", "hr": "sh", "bs": "sh"}  # Serbo-Croatian is one wordfreq list
_DIGITS = re.compile(r"\d\d")
_LABEL = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,15})=(.+)$")


@dataclass
class TextSource:
    """Sentences of one language; consumed once (may be a stream)."""

    sentences: Iterable[str]
    label: str | None = None  # language label; None = not given (see resolve_labels)
    description: str = "custom corpus"
    kind: str = "corpus"  # corpus | dataset


@dataclass
class WordFreqSource:
    """The top words of one language with their frequencies (share of running words)."""

    code: str  # wordfreq's language code
    words: list[tuple[str, float]]
    label: str | None = None
    description: str = ""
    selection: dict = field(default_factory=dict)
    kind: str = "wordfreq"


@dataclass
class HeldoutText:
    """Text the coverage is measured on (never used to select sub-words)."""

    sentences: list[str]
    label: str | None = None
    description: str = "held-out text"


# ------------------------------------------------------------------------------------------ languages
def language_key(label: str | None) -> str:
    """One key per language: the ISO code of a dataset code (``english``/``en-US`` → ``en``,
    ``tl-PH`` → ``fil``, ``nb-NO`` → ``nb``), else the label itself."""
    if label is None:
        return UNLABELLED
    iso = iso_language(label)
    if iso is None:
        return label
    return _SAME_LANGUAGE.get(iso, iso)


def resolve_labels(items: Sequence[TextSource | WordFreqSource | HeldoutText]) -> None:
    """Give unlabelled items (``--corpus FILE`` without ``LANG=``) the one language named elsewhere,
    or the key ``text`` when none or several are named."""
    named = {language_key(item.label) for item in items if item.label is not None}
    fill = next(iter(named)) if len(named) == 1 else UNLABELLED
    for item in items:
        if item.label is None:
            item.label = fill


def split_label(item: str) -> tuple[str | None, str]:
    """``de=corpus.txt`` → (``de``, ``corpus.txt``); ``corpus.txt`` → (None, ``corpus.txt``)."""
    match = _LABEL.match(str(item))
    if match and not Path(item).exists():
        return match.group(1), match.group(2)
    return None, str(item)


# ------------------------------------------------------------------------------------------- corpora
def _jsonl_texts(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise PolydistillError(f"{path} line {number} is not JSON ({err.msg}); give one JSON object "
                                       "with a \"text\" field per line, or a plain-text file.") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise PolydistillError(f"{path} line {number} has no \"text\" string field; give one JSON object "
                                       "with a \"text\" field per line, or a plain-text file.")
            yield row["text"]


def _folder_texts(path: Path) -> Iterator[str]:
    from datasets import DatasetDict, load_from_disk

    try:
        data = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as err:
        raise PolydistillError(f"Corpus folder {path} is not a saved `datasets` dataset ({str(err)[:120]}); "
                               "pass text or JSONL files, or a folder written by save_to_disk.") from None
    parts = list(data.values()) if isinstance(data, DatasetDict) else [data]
    for part in parts:
        require("text" in part.column_names,
                f"Corpus folder {path} has no 'text' column (columns: {', '.join(part.column_names)}).")
        yield from part["text"]


def _check_corpus_path(path: Path) -> None:
    require(path.exists(), f"Corpus file {path} does not exist; pass plain-text files (one sentence per line), "
                           "JSONL files with a \"text\" field, or a datasets folder.")
    if path.is_file():
        check_utf8_text(path)  # one sentence naming the file and line, instead of silent U+FFFD


def read_corpus_files(paths: Sequence[str | Path]) -> Iterator[str]:
    """The texts of the corpus files, streamed. Every path is checked first (exists, UTF-8)."""
    files = [Path(p).expanduser() for p in paths]
    for path in files:
        _check_corpus_path(path)

    def stream() -> Iterator[str]:
        for path in files:
            if path.is_dir():
                yield from _folder_texts(path)
            elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
                yield from _jsonl_texts(path)
            else:
                with path.open(encoding="utf-8") as handle:
                    yield from handle

    return stream()


def corpus_sources(items: Sequence[str | Path]) -> list[TextSource]:
    """One :class:`TextSource` per language label of ``[LANG=]FILE`` items (files of one label pooled)."""
    by_label: dict[str | None, list[str]] = {}
    for item in items:
        label, path = split_label(str(item))
        by_label.setdefault(label, []).append(path)
    return [TextSource(read_corpus_files(paths), label=label, description=", ".join(paths), kind="corpus")
            for label, paths in by_label.items()]


def heldout_files(items: Sequence[str | Path]) -> list[HeldoutText]:
    """One :class:`HeldoutText` per ``[LANG=]FILE`` item."""
    out = []
    for item in items:
        label, path = split_label(str(item))
        sentences = [s.strip() for s in read_corpus_files([path]) if s.strip()]
        require(sentences, f"Held-out file {path} has no text.")
        out.append(HeldoutText(sentences, label=label, description=path))
    return out


# ---------------------------------------------------------------------------------------- task data
def _inputs(rows) -> list[str]:
    """The inputs of a split (text, or NER tokens joined by spaces) — never the labels."""
    if "text" in rows.column_names:
        return list(rows["text"])
    return [" ".join(tokens) for tokens in rows["tokens"]]


def _check_splits(splits: Sequence[str], what: str) -> list[str]:
    splits = [s.strip() for s in splits if s.strip()]
    bad = [s for s in splits if s not in DATASET_SPLITS]
    require(not bad and splits, f"{what} must be among {', '.join(DATASET_SPLITS)}, not {', '.join(bad) or 'nothing'}.")
    return splits


def dataset_sources(name: str, languages, data_root: str | None = None, splits: Sequence[str] = ("train",),
                    heldout_split: str | None = "validation") -> tuple[list[TextSource], list[HeldoutText]]:
    """Per language of the dataset: the inputs of ``splits`` as a source, the inputs of ``heldout_split``
    as held-out text."""
    splits = _check_splits(splits, "--dataset-splits")
    if heldout_split is not None:
        _check_splits([heldout_split], "--heldout-split")
    data = load_task_data(name, languages=languages, data_root=data_root, purpose="evaluate")
    per_split = {}
    for split in {*splits, *([heldout_split] if heldout_split else [])}:
        rows = data.splits[split]
        per_split[split] = (_inputs(rows), list(rows["language"]))
    sources, heldout = [], []
    for code in data.languages:
        sentences = [t for split in splits for t, lang in zip(*per_split[split], strict=True) if lang == code]
        if sentences:
            sources.append(TextSource(sentences, label=code, kind="dataset",
                                      description=f"{data.name} {code} {'+'.join(splits)} inputs"))
        if heldout_split:
            held = [t for t, lang in zip(*per_split[heldout_split], strict=True) if lang == code]
            if held:
                heldout.append(HeldoutText(held, label=code, description=f"{data.name} {code} {heldout_split} inputs"))
    require(sources, f"{data.name} has no {'/'.join(splits)} text for {' '.join(data.languages)}; "
                     "choose other --dataset-splits or languages.")
    return sources, heldout


def dataset_sentences(name: str, languages, data_root: str | None = None, split: str = "train") -> list[str]:
    """Inputs of one split of a polydistill dataset, all languages pooled (text, or joined NER tokens)."""
    sources, _ = dataset_sources(name, languages, data_root, splits=(split,), heldout_split=None)
    return [s for source in sources for s in source.sentences]


# ------------------------------------------------------------------------------------------ wordfreq
def wordfreq_languages(frequencies: Mapping[str, Mapping[str, float]] | None = None) -> set[str]:
    """The languages with a word list (the injected lists, else the installed ``wordfreq``'s)."""
    if frequencies is not None:
        return set(frequencies)
    try:
        import wordfreq
    except ImportError:
        raise PolydistillError("--wordfreq needs the wordfreq package: pip install wordfreq.") from None
    return set(wordfreq.available_languages())


def wordfreq_code(label: str, available: set[str]) -> str:
    """wordfreq's code for a language label, refusing a language it has no list for (wordfreq itself
    would silently answer with English)."""
    key = language_key(label)
    code = _WORDFREQ_CODE.get(key, key)
    if code not in available:
        raise PolydistillError(
            f"wordfreq has no word list for '{label}'" + (f" ({code})" if code != label else "")
            + f"; it has {' '.join(sorted(available))}; give text of that language with --corpus instead."
        )
    return code


def wordfreq_source(label: str, words: int | None = None, mass: float | None = None, *,
                    capitalized: bool = True,
                    frequencies: Mapping[str, Mapping[str, float]] | None = None) -> WordFreqSource:
    """The top ``words`` words of a language (default 50,000), or the fewest top words whose frequencies
    add up to ``mass`` (share of running words), or both caps. ``capitalized`` adds each word's
    capitalised form with the same frequency (word lists are lower-cased; sentence starts are not).
    ``frequencies`` (code → {word: frequency}) replaces the wordfreq package, e.g. in tests."""
    require(words is None or words > 0, f"--wordfreq-words must be positive, not {words}.")
    require(mass is None or 0 < mass <= 1, f"--wordfreq-mass must be a fraction in (0, 1], not {mass}.")
    available = wordfreq_languages(frequencies)
    code = wordfreq_code(label, available)
    if frequencies is not None:
        table = dict(frequencies[code])
    else:
        import wordfreq

        # multi-digit entries are placeholders ("00" = any two-digit number), as in wordfreq.top_n_list
        placeholder = getattr(wordfreq, "has_digit_sequence", _DIGITS.search)
        table = {w: f for w, f in wordfreq.get_frequency_dict(code, wordlist="best").items() if not placeholder(w)}
    ranked = sorted(((w, float(f)) for w, f in table.items() if w.strip() and f > 0), key=lambda x: (-x[1], x[0]))
    if words is None and mass is None:
        words = DEFAULT_WORDFREQ_WORDS
    chosen: list[tuple[str, float]] = []
    total = 0.0
    for word, freq in ranked:
        if (words is not None and len(chosen) >= words) or (mass is not None and total >= mass - 1e-12):
            break
        chosen.append((word, freq))
        total += freq
    require(chosen, f"wordfreq has no words for {code}.")
    selection = {"words": len(chosen), "mass": round(total, 4), "max_words": words, "target_mass": mass,
                 "capitalized": capitalized}
    if capitalized:
        variants = [(w[:1].upper() + w[1:], f) for w, f in chosen if w[:1].upper() + w[1:] != w]
        chosen = chosen + variants
    what = f"top {selection['words']:,} words" + (f" (mass {total:.3f})" if mass is not None else "")
    return WordFreqSource(code=code, words=chosen, label=label, description=f"wordfreq {code} {what}",
                          selection=selection)


__all__ = ["DATASET_SPLITS", "DEFAULT_WORDFREQ_WORDS", "HeldoutText", "TextSource", "UNLABELLED", "WordFreqSource",
           "corpus_sources", "dataset_sentences", "dataset_sources", "heldout_files", "language_key",
           "read_corpus_files", "resolve_labels", "split_label", "wordfreq_code", "wordfreq_languages",
           "wordfreq_source"]

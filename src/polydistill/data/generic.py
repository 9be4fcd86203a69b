"""Users' own data: a directory of split files, classification (CSV/TSV/JSONL) or NER (CoNLL/IOB2).

Layout (split names: train, validation | dev | val, test; at least one must exist):

- classification: ``<dir>/<split>.{csv,tsv,jsonl}`` with columns ``text``, ``label`` and optionally
  ``language`` (default ``und``). Labels may be names or ids.
- NER: ``<dir>/<split>.{conll,iob2,iob,bio}``, or one sub-directory per language
  ``<dir>/<lang>/<split>.conll``; tag in the last column (or column 3 for ``index token tag ...``).

Label order: ``<dir>/labels.txt`` (one name per line) when present, otherwise sorted names
(numeric order when every label is an integer); for NER ``O`` then ``B-X, I-X`` per sorted type X.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from polydistill.data.base import DatasetAdapter, LoadOptions, SplitColumns, label_ids, read_text_lines
from polydistill.data.conll import bio_label_names, read_iob
from polydistill.errors import PolydistillError
from polydistill.io import check_utf8_text

SPLIT_STEMS = {"train": ("train",), "validation": ("validation", "dev", "val"), "test": ("test",)}
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
CONLL_SUFFIXES = (".conll", ".iob2", ".iob", ".bio")
DEFAULT_LANGUAGE = "und"


def _find(directory: Path, split: str, suffixes: tuple[str, ...]) -> Path | None:
    for stem in SPLIT_STEMS[split]:
        for suffix in suffixes:
            if (directory / f"{stem}{suffix}").is_file():
                return directory / f"{stem}{suffix}"
    return None


def _read_table(path: Path) -> list[dict]:
    check_utf8_text(path)  # one sentence naming the first bad line, not a UnicodeDecodeError mid-parse
    if path.suffix == ".jsonl":
        rows = []
        for lineno, line in enumerate(read_text_lines(path), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise PolydistillError(f"{path} line {lineno} is not JSON ({err.msg}); fix the file.") from None
        return rows
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))


def _label_order(directory: Path, seen: set[str]) -> list[str]:
    if (directory / "labels.txt").is_file():
        return [line.strip() for line in read_text_lines(directory / "labels.txt") if line.strip()]
    if all(name.lstrip("-").isdigit() for name in seen):
        return sorted(seen, key=int)
    return sorted(seen)


def _sequence_adapter(directory: Path, files: dict[str, Path]) -> DatasetAdapter:
    raw: dict[str, dict[str, dict[str, list]]] = {}  # language -> split -> {"text", "label"(names)}
    names: set[str] = set()
    for split, path in files.items():
        for i, row in enumerate(_read_table(path), 1):
            if not isinstance(row, dict) or "text" not in row or "label" not in row:
                raise PolydistillError(f"{path} record {i} lacks a 'text' or 'label' column; "
                                       "generic classification files need text, label (and optionally language).")
            language = str(row.get("language") or DEFAULT_LANGUAGE)
            cols = raw.setdefault(language, {}).setdefault(split, {"text": [], "label": []})
            cols["text"].append(str(row["text"]))
            cols["label"].append(str(row["label"]))
            names.add(str(row["label"]))
    if not raw:
        raise PolydistillError(f"{directory} holds no examples: {', '.join(p.name for p in files.values())} "
                               f"{'has' if len(files) == 1 else 'have'} no rows below the header; add text,label rows.")
    label_names = tuple(_label_order(directory, names))
    per_language: dict[str, SplitColumns] = {
        lang: {split: {"text": c["text"], "label": label_ids(c["label"], label_names, str(files[split]))}
               for split, c in splits.items()}
        for lang, splits in raw.items()
    }
    return _adapter(directory, "sequence", label_names, per_language)


def _token_adapter(directory: Path, by_language: dict[str, dict[str, Path]]) -> DatasetAdapter:
    raw: dict[str, dict[str, tuple[list, list]]] = {}
    types: set[str] = set()
    for language, files in by_language.items():
        for split, path in files.items():
            tokens, tags = read_iob(path, drop_types=())
            raw.setdefault(language, {})[split] = (tokens, tags)
            types.update(tag[2:] for row in tags for tag in row if tag != "O")
    if not any(tokens for splits in raw.values() for tokens, _ in splits.values()):
        names = ", ".join(str(p.relative_to(directory)) for files in by_language.values() for p in files.values())
        raise PolydistillError(f"{directory} holds no examples: {names} hold no sentences; add token/tag lines.")
    if (directory / "labels.txt").is_file():
        label_names = tuple(_label_order(directory, set()))
    else:
        label_names = tuple(bio_label_names(sorted(types)))
    per_language = {
        lang: {split: {"tokens": tokens, "tags": [label_ids(row, label_names, str(by_language[lang][split]))
                                                  for row in tags]}
               for split, (tokens, tags) in splits.items()}
        for lang, splits in raw.items()
    }
    return _adapter(directory, "token", label_names, per_language)


def _adapter(directory: Path, task, label_names: tuple[str, ...], per_language: dict[str, SplitColumns]):
    languages = tuple(sorted(per_language))
    test_only = tuple(lang for lang in languages if not per_language[lang].get("train", {}).get(
        "text" if task == "sequence" else "tokens"))

    def read_local(folder: Path, language: str, options: LoadOptions) -> SplitColumns:
        return per_language[language]

    named = {"all": [lang for lang in languages if lang not in test_only] or list(languages),
             "english": [lang for lang in languages if lang.lower().split("-")[0].split("_")[0] in ("en", "english")]}
    return DatasetAdapter(
        name=directory.name, task=task, hub_id=None, label_names=label_names, valid=languages, named=named,
        test_only=test_only, find_folder=lambda root: directory, local_languages=lambda folder: list(languages),
        read_local=read_local, read_hub=None,
    )


def make_adapter(directory: Path) -> DatasetAdapter:
    """Scan ``directory`` (user data in the generic layout) and return an adapter over it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolydistillError(f"{directory} is not a directory; generic data is a folder of split files "
                               "(train/validation/test .csv, .tsv, .jsonl, .conll or .iob2).")
    tables = {split: path for split in SPLIT_STEMS if (path := _find(directory, split, TABLE_SUFFIXES))}
    if tables:
        return _sequence_adapter(directory, tables)
    by_language: dict[str, dict[str, Path]] = {}
    flat = {split: path for split in SPLIT_STEMS if (path := _find(directory, split, CONLL_SUFFIXES))}
    if flat:
        by_language[DEFAULT_LANGUAGE] = flat
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        files = {split: path for split in SPLIT_STEMS if (path := _find(sub, split, CONLL_SUFFIXES))}
        if files:
            by_language[sub.name] = files
    if by_language:
        return _token_adapter(directory, by_language)
    raise PolydistillError(
        f"{directory} holds no train/validation/test files in a known format; expected e.g. train.csv "
        "(text,label,language), train.jsonl, train.conll or <language>/train.iob2."
    )


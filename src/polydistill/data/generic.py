"""Users' own data: a directory of split files, classification (CSV/TSV/JSONL) or NER (CoNLL/IOB2).

Layout (split names: train, validation | dev | val, test; at least one must exist):

- classification: ``<dir>/<split>.{csv,tsv,jsonl}`` with columns ``text``, ``label`` and optionally
  ``language`` (default ``und``). Labels may be names or ids.
- NER: ``<dir>/<split>.{conll,iob2,iob,bio}``, or one sub-directory per language
  ``<dir>/<lang>/<split>.conll``; tag in the last column (or column 3 for ``index token tag ...``).

Label order: ``<dir>/labels.txt`` (one name per line) when present, otherwise sorted names
(numeric order when every label is an integer); for NER ``O`` then ``B-X, I-X`` per sorted type X.

Parsing is strict, because a lenient parse trains a wrong model without a word: CSV/TSV are read by
the csv module (Excel's quoting, strict; a UTF-8 BOM allowed) and must have a header naming each
column once and exactly that many fields per row; JSONL lines are objects with each key once, a
string ``text`` and a string or number ``label``; a missing or blank text, label or language is
refused naming the file and line. Labels and languages are compared as stripped strings, and
spellings that differ only in spacing, case or number format (``music`` / ``music ``, ``EN`` /
``en``, ``1`` / ``1.0``) are refused unless ``labels.txt`` names the label set (each label once; rows
must then use one of its names). CoNLL files get the same treatment: the same columns on every
token line, a non-empty token and tag. Training also needs at least two labels (``load.py``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from polydistill.data.base import DatasetAdapter, LoadOptions, SplitColumns, label_ids, read_text_lines
from polydistill.data.conll import bio_label_names, read_iob
from polydistill.errors import PolydistillError
from polydistill.io import check_utf8_text

SPLIT_STEMS = {"train": ("train",), "validation": ("validation", "dev", "val"), "test": ("test",)}
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")
CONLL_SUFFIXES = (".conll", ".iob2", ".iob", ".bio")
DEFAULT_LANGUAGE = "und"
LABELS_FILE = "labels.txt"


def _find(directory: Path, split: str, suffixes: tuple[str, ...]) -> Path | None:
    for stem in SPLIT_STEMS[split]:
        for suffix in suffixes:
            if (directory / f"{stem}{suffix}").is_file():
                return directory / f"{stem}{suffix}"
    return None


@dataclass(frozen=True)
class _Row:
    """One example as written: the label and language keep their spelling (near-duplicates are told apart)."""

    line: int
    text: str
    label: str
    language: str | None  # None: the file has no language column


def _read_table(path: Path) -> list[_Row]:
    check_utf8_text(path)  # one sentence naming the first bad line, not a UnicodeDecodeError mid-parse
    return _read_jsonl(path) if path.suffix == ".jsonl" else _read_delimited(path)


def _read_delimited(path: Path) -> list[_Row]:
    """CSV / TSV with a header; quoting as the csv module (and Excel) writes it, a BOM allowed."""
    tsv = path.suffix == ".tsv"
    rows: list[_Row] = []
    header: list[str] | None = None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t" if tsv else ",", strict=True)
        line = 1  # where the next record starts (a quoted field may span lines)
        try:
            for fields in reader:
                start, line = line, reader.line_num + 1
                if not any(field.strip() for field in fields):  # a blank line, or Excel's ",,," row
                    continue
                if header is None:
                    header = _header(path, start, fields)
                    continue
                if len(fields) != len(header):
                    sep = "tab" if tsv else "comma"
                    raise PolydistillError(
                        f"{path} line {start} has {_count(len(fields), 'field')} but the header has {len(header)} "
                        f"({','.join(header)}); every row needs exactly those, so quote a text that holds a {sep} "
                        f"(\"like{',' if not tsv else ''} this\") or fix the row.")
                record = dict(zip(header, fields, strict=True))
                rows.append(_row(path, start, record["text"], record["label"], record.get("language"),
                                 "language" in record))
        except csv.Error as err:
            raise PolydistillError(f"{path} line {reader.line_num} is not valid {'TSV' if tsv else 'CSV'} ({err}); "
                                   "fix its quoting (a field that holds quotes is written \"like \"\"this\"\"\").") from None
    return rows


def _header(path: Path, line: int, fields: list[str]) -> list[str]:
    names = [field.strip() for field in fields]
    seen: set[str] = set()
    for name in names:
        if name in seen and name:  # unnamed columns (Excel's trailing ",,") are ignored, however many
            raise PolydistillError(f"{path} line {line} (the header {','.join(names)}) names the column {name!r} "
                                   "twice; keep one, generic classification files need text,label (and optionally "
                                   "language).")
        seen.add(name)
    missing = [name for name in ("text", "label") if name not in seen]
    if missing:
        raise PolydistillError(f"{path} line {line} (the header {','.join(names)[:80]}) lacks a "
                               f"{' and a '.join(repr(m) for m in missing)} column; generic classification files "
                               "start with a header text,label (and optionally language).")
    return names


def _read_jsonl(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    for lineno, line in enumerate(read_text_lines(path), 1):
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_keys(path, lineno))
        except json.JSONDecodeError as err:
            raise PolydistillError(f"{path} line {lineno} is not JSON ({err.msg}); fix the file.") from None
        if not isinstance(record, dict):
            raise PolydistillError(f"{path} line {lineno} is a JSON {type(record).__name__}, not an object; each line "
                                   'needs {"text": ..., "label": ...} (and optionally "language").')
        for key in ("text", "label"):
            if key not in record:
                raise PolydistillError(f"{path} line {lineno} lacks a {key!r} key; each line needs "
                                       '{"text": ..., "label": ...} (and optionally "language").')
        text, label, language = record["text"], record["label"], record.get("language")
        if text is not None and not isinstance(text, str):
            raise PolydistillError(f"{path} line {lineno} has text {json.dumps(text)[:40]}, not a string; "
                                   "write the text in quotes.")
        if isinstance(label, bool) or not isinstance(label, str | int | float | None) or (
                isinstance(label, float) and not math.isfinite(label)):
            raise PolydistillError(f"{path} line {lineno} has label {json.dumps(label)[:40]}, not a name or a "
                                   "number; write one label per line.")
        if language is not None and not isinstance(language, str):
            raise PolydistillError(f"{path} line {lineno} has language {json.dumps(language)[:40]}, not a string; "
                                   "write a language code such as \"en\".")
        rows.append(_row(path, lineno, text, None if label is None else str(label), language, "language" in record))
    return rows


def _unique_keys(path: Path, lineno: int):
    def pairs_to_dict(pairs: list[tuple[str, object]]) -> dict:
        record: dict = {}
        for key, value in pairs:
            if key in record:
                raise PolydistillError(f"{path} line {lineno} gives the key {key!r} twice; keep one.")
            record[key] = value
        return record
    return pairs_to_dict


def _row(path: Path, line: int, text: str | None, label: str | None, language: str | None, has_language: bool) -> _Row:
    if text is None or not text.strip():
        raise PolydistillError(f"{path} line {line} has {'no' if text is None else 'an empty'} text; give every row "
                               "a text or delete the row.")
    if label is None or not label.strip():
        raise PolydistillError(f"{path} line {line} has {'no' if label is None else 'an empty'} label "
                               f"(text {text[:40]!r}); give every row a label or delete the row.")
    if has_language and (language is None or not language.strip()):
        raise PolydistillError(f"{path} line {line} has {'no' if language is None else 'an empty'} language; give "
                               f"every row a language code or drop the language column (every row is then "
                               f"{DEFAULT_LANGUAGE!r}).")
    return _Row(line, text, label, language if has_language else None)


# --- labels -----------------------------------------------------------------------------------------

def _spelling_key(name: str) -> str:
    """What two spellings of one label share: stripped, case-folded, numbers by value (``1`` = ``1.0``)."""
    name = name.strip()
    try:
        number = Decimal(name)
    except InvalidOperation:
        return name.casefold()
    return f"#{number.normalize():f}" if number.is_finite() else name.casefold()


def _near_duplicates(where: dict[str, str], what: str, hint: str, directory: Path) -> None:
    """Refuse values (spelling -> where first seen) that differ only in spacing, case or number format."""
    groups: dict[str, list[str]] = defaultdict(list)
    for spelling in where:
        groups[_spelling_key(spelling)].append(spelling)
    clashes = [sorted(group) for group in groups.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" / ".join(f"{s!r} ({where[s]})" for s in group) for group in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise PolydistillError(f"{directory} has {what}s that differ only in spacing, case or number format: "
                               f"{shown}{more}; {hint}.")


def _labels_file(directory: Path) -> tuple[str, ...] | None:
    """The label set the user named in ``labels.txt`` (one per line, each once), or None without one."""
    path = directory / LABELS_FILE
    if not path.is_file():
        return None
    names: dict[str, int] = {}
    for lineno, line in enumerate(read_text_lines(path), 1):
        name = (line.removeprefix("\ufeff") if lineno == 1 else line).strip()
        if not name:
            continue
        if name in names:
            raise PolydistillError(f"{path} line {lineno} repeats the label {name!r} (line {names[name]}); "
                                   "list each label once.")
        names[name] = lineno
    return tuple(names)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _shown(names: Iterable[str], limit: int = 10) -> str:
    names = list(names)
    text = ", ".join(names[:limit]) + (f", … ({len(names)} in all)" if len(names) > limit else "")
    return text or "none"


def _label_order(seen: set[str]) -> list[str]:
    """Labels not named in labels.txt: sorted, in numeric order when every one is an integer."""
    if all(name.lstrip("-").isdigit() for name in seen):
        return sorted(seen, key=int)
    return sorted(seen)


def _sequence_adapter(directory: Path, files: dict[str, Path]) -> DatasetAdapter:
    tables = {split: _read_table(path) for split, path in files.items()}
    if not any(tables.values()):
        raise PolydistillError(f"{directory} holds no examples: {', '.join(p.name for p in files.values())} "
                               f"{'has' if len(files) == 1 else 'have'} no rows below the header; add text,label rows.")
    labels_where: dict[str, str] = {}
    languages_where: dict[str, str] = {}
    for split, rows in tables.items():
        for row in rows:
            labels_where.setdefault(row.label, f"{files[split].name} line {row.line}")
            if row.language is not None:
                languages_where.setdefault(row.language, f"{files[split].name} line {row.line}")
    _near_duplicates(languages_where, "language code", "use one spelling per language code", directory)
    named = _labels_file(directory)
    if named is None:
        _near_duplicates(labels_where, "label", f"use one spelling per label, or list the labels you mean one per "
                         f"line in {directory / LABELS_FILE} (rows are then matched to it as stripped strings)",
                         directory)
        label_names = tuple(_label_order({label.strip() for label in labels_where}))
    else:
        label_names = named
        for split, rows in tables.items():
            for row in rows:
                if row.label.strip() not in label_names:
                    raise PolydistillError(f"{files[split]} line {row.line} has the label {row.label.strip()!r}, "
                                           f"which {directory / LABELS_FILE} does not list ({_shown(label_names)}); "
                                           "add it there or fix the row.")

    raw: dict[str, dict[str, dict[str, list]]] = {}  # language -> split -> {"text", "label"(names)}
    for split, rows in tables.items():
        for row in rows:
            language = DEFAULT_LANGUAGE if row.language is None else row.language.strip()
            cols = raw.setdefault(language, {}).setdefault(split, {"text": [], "label": []})
            cols["text"].append(row.text)
            cols["label"].append(row.label.strip())
    per_language: dict[str, SplitColumns] = {
        lang: {split: {"text": c["text"], "label": label_ids(c["label"], label_names, str(files[split]))}
               for split, c in splits.items()}
        for lang, splits in raw.items()
    }
    return _adapter(directory, "sequence", label_names, per_language)


def _token_adapter(directory: Path, by_language: dict[str, dict[str, Path]]) -> DatasetAdapter:
    raw: dict[str, dict[str, tuple[list, list]]] = {}
    tags_where: dict[str, tuple[Path, int]] = {}  # tag -> first file and line
    for language, files in by_language.items():
        for split, path in files.items():
            first_seen: dict[str, int] = {}
            tokens, tags = read_iob(path, drop_types=(), strict=True, first_seen=first_seen)
            raw.setdefault(language, {})[split] = (tokens, tags)
            for tag, line in first_seen.items():
                tags_where.setdefault(tag, (path, line))
    if not any(tokens for splits in raw.values() for tokens, _ in splits.values()):
        names = ", ".join(str(p.relative_to(directory)) for files in by_language.values() for p in files.values())
        raise PolydistillError(f"{directory} holds no examples: {names} hold no sentences; add token/tag lines.")
    named = _labels_file(directory)
    if named is None:
        types_where: dict[str, str] = {}
        for tag, (path, line) in tags_where.items():
            if tag != "O":
                types_where.setdefault(tag[2:], f"{path.relative_to(directory)} line {line}")
        _near_duplicates(types_where, "entity type", f"use one spelling per type, or list the tags you mean one "
                         f"per line in {directory / LABELS_FILE}", directory)
        label_names = tuple(bio_label_names(sorted(types_where)))
    else:
        label_names = named
        for tag, (path, line) in sorted(tags_where.items(), key=lambda item: (str(item[1][0]), item[1][1])):
            if tag not in label_names:
                raise PolydistillError(f"{path} line {line} has the tag {tag!r}, which {directory / LABELS_FILE} "
                                       f"does not list ({_shown(label_names)}); add it there or fix the line.")
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


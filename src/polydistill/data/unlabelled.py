"""Unlabelled inputs for teacher-labelled augmentation (KD): examples in the task's schema whose
labels are ``IGNORE_INDEX``, so they contribute the teacher-matching terms only (never CE).

Sources (``--unlabelled-data``):
- ``DATASET:LANGUAGES`` — the *train* inputs of other languages of a dataset (MASSIVE is parallel
  across its 52 locales: the same utterances in every language), e.g. ``massive:it-IT,nl-NL``;
  labels are dropped. Test splits are never used;
- a text file (one example per line; for NER the line's whitespace-separated words), or a JSONL file
  with a ``text`` (or ``tokens``) field; its language is ``und`` unless given as ``LANG=FILE``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from polydistill.data.base import read_text_lines
from polydistill.data.load import load_task_data
from polydistill.data.types import IGNORE_INDEX, LABEL, LANGUAGE, TAGS, TEXT, TOKENS
from polydistill.errors import PolydistillError, require


def load_unlabelled(source: str, task: str, data_root: str | os.PathLike | None = None, limit: int | None = None,
                    seed: int = 0):
    """A ``datasets.Dataset`` of unlabelled examples for ``task`` (sequence / token)."""
    from datasets import Dataset

    kind, first, second = parse_source(source)
    if kind == "file":
        texts = _read_file(Path(second))
        languages = [first] * len(texts)
    else:
        texts, languages = _from_dataset(source, task, data_root)
    require(texts, f"The unlabelled data {source} holds no examples.")
    if task == "sequence":
        rows = {TEXT: texts, LABEL: [IGNORE_INDEX] * len(texts), LANGUAGE: languages}
    else:
        tokens = [t.split() if isinstance(t, str) else list(t) for t in texts]
        rows = {TOKENS: tokens, TAGS: [[IGNORE_INDEX] * len(t) for t in tokens], LANGUAGE: languages}
    dataset = Dataset.from_dict(rows)
    if task == "token":
        dataset = dataset.filter(lambda row: len(row[TOKENS]) > 0)
    if limit is not None and len(dataset) > limit:
        dataset = dataset.shuffle(seed=seed).select(range(limit))
    return dataset


def parse_source(source: str) -> tuple[str, str, Path | str]:
    """What a source names, without reading it: ``("file", LANGUAGE, PATH)`` or ``("dataset", NAME,
    LANGUAGES)``; a source that is neither is refused in one sentence."""
    language, path = "und", Path(source).expanduser()
    if "=" in source and not path.exists():  # LANG=FILE
        language, _, rest = source.partition("=")
        path = Path(rest).expanduser()
    if path.is_file():
        return "file", language, path
    if ":" in source:
        name, _, languages = source.partition(":")
        return "dataset", name, languages
    raise PolydistillError(f"Unlabelled data {source!r} is neither a file nor DATASET:LANGUAGES "
                           "(e.g. massive:it-IT,nl-NL).")


def _read_file(path: Path) -> list:
    lines = [line for line in read_text_lines(path) if line.strip()]
    if path.suffix != ".jsonl":
        return lines
    rows = []
    for lineno, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise PolydistillError(f"{path} line {lineno} is not JSON ({err.msg}).") from None
        value = record.get("text", record.get("tokens")) if isinstance(record, dict) else None
        require(value is not None, f"{path} line {lineno} has no 'text' or 'tokens' field.")
        rows.append(value)
    return rows


def _from_dataset(source: str, task: str, data_root) -> tuple[list, list[str]]:
    name, _, languages = source.partition(":")
    data = load_task_data(name, languages=languages or "all", data_root=data_root, purpose="evaluate")
    require(data.task == task, f"The unlabelled data {source} is a {data.task} dataset, but the task is {task}.")
    train = data.splits["train"]
    column = TEXT if task == "sequence" else TOKENS
    return list(train[column]), list(train[LANGUAGE])

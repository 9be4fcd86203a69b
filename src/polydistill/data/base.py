"""What every dataset adapter provides, and small helpers they share.

An adapter reads one language at a time into plain column dicts (``{"text": [...], "label": [...]}``
or ``{"tokens": [...], "tags": [...]}``) per canonical split; ``load.py`` assembles them into a
``datasets.DatasetDict``. Parsing with plain Python and building once with ``Dataset.from_dict`` is
much faster than per-file ``load_dataset`` calls for MASSIVE's 52 locales.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydistill.data.types import TaskType
from polydistill.errors import PolydistillError
from polydistill.io import check_utf8_text

Columns = dict[str, list[Any]]
SplitColumns = dict[str, Columns]  # canonical split name -> columns


@dataclass
class LoadOptions:
    purpose: str = "train"
    allow_prerelease: bool = False
    warnings: list[str] = field(default_factory=list)  # collected, surfaced by load_task_data


@dataclass(frozen=True)
class DatasetAdapter:
    name: str
    task: TaskType
    hub_id: str | None
    label_names: tuple[str, ...]
    valid: tuple[str, ...]  # every language code the adapter knows, canonical order
    named: dict[str, list[str]]  # partitions: all / seen / unseen / english (+ extras)
    test_only: tuple[str, ...]  # codes with no train split (evaluation only)
    find_folder: Callable[[Path], Path | None]
    local_languages: Callable[[Path], list[str]]
    read_local: Callable[[Path, str, LoadOptions], SplitColumns]
    read_hub: Callable[[str, LoadOptions], SplitColumns] | None


def names_of(dataset, column: str) -> list:
    """A column's values as label *names*, whether the hub stores ClassLabel ids or strings.

    Works for ``ClassLabel`` and ``Sequence(ClassLabel)`` / ``List(ClassLabel)`` features, so the
    fixed label index never depends on the order a hub script declared its classes in.
    """
    from datasets import ClassLabel

    feature = dataset.features[column]
    values = dataset[column]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(int(v)) for v in values]
    inner = getattr(feature, "feature", None)
    if isinstance(inner, ClassLabel):
        return [[inner.int2str(int(v)) for v in row] for row in values]
    return list(values)


def label_ids(names: list[str], label_names: tuple[str, ...], where: str) -> list[int]:
    index = {name: i for i, name in enumerate(label_names)}
    try:
        return [index[name] for name in names]
    except KeyError as err:
        raise PolydistillError(
            f"{where} has label {err.args[0]!r}, which is not one of the {len(label_names)} known labels; "
            "the file is corrupt or from another dataset version."
        ) from None


def read_text_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file split on '\\n' only (tweets may hold other Unicode line breaks)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        check_utf8_text(path)  # names the first bad line
        raise PolydistillError(f"{path} is not UTF-8 text ({err.reason}); the file is corrupt.") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def load_hub_splits(hub_id: str, config: str, convert: Callable[[Any, str], Columns]) -> SplitColumns:
    """One hub config's train/validation/test splits, each converted to canonical columns."""
    from datasets import load_dataset

    dd = load_dataset(hub_id, config)
    return {split: convert(dd[split], f"{hub_id}:{config}:{split}") for split in ("train", "validation", "test")
            if split in dd}

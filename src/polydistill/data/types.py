"""The typed hand-over between the data layer and every later stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import datasets

TaskType = Literal["sequence", "token"]

# Column names every adapter produces.
TEXT, TOKENS, LABEL, TAGS, LANGUAGE = "text", "tokens", "label", "tags", "language"
SPLITS = ("train", "validation", "test")
# The label of a position no loss or metric counts (later sub-words, specials, padding): the value
# PyTorch's cross-entropy and the Hugging Face collators use.
IGNORE_INDEX = -100


@dataclass
class TaskData:
    """A loaded dataset: one schema per task type, label names in a fixed order.

    sequence: columns ``text`` (str), ``label`` (int), ``language`` (str)
    token:    columns ``tokens`` (list[str]), ``tags`` (list[int]), ``language`` (str)
    """

    name: str
    task: TaskType
    label_names: list[str]
    splits: datasets.DatasetDict
    languages: list[str] = field(default_factory=list)
    # languages that have no train split (evaluation only), e.g. UNER's PUD treebanks
    test_only_languages: list[str] = field(default_factory=list)
    # content hash of the splits as loaded (+ name, labels, fraction, seed): identifies the data
    fingerprint: str = ""
    # where the data came from: a local folder or hf://<hub id>
    source: str = ""
    # non-fatal problems met while loading (e.g. a missing UNER v1 train file)
    warnings: list[str] = field(default_factory=list)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

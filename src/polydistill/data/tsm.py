"""Tweet Sentiment Multilingual (XLM-T / UMSAB; Barbieri et al. 2022): 3-way sentiment.

Local layout: ``<folder>/sentiment/<language>/{train,val,test}_{text,labels}.txt``, one tweet and one
label id (0 negative, 1 neutral, 2 positive) per line. The tweets have no clear data licence, so no
real line of them is ever committed to this repository (test fixtures are invented).
"""

from __future__ import annotations

from pathlib import Path

from polydistill.data.base import (
    DatasetAdapter,
    LoadOptions,
    SplitColumns,
    label_ids,
    load_hub_splits,
    names_of,
    read_text_lines,
)
from polydistill.data.languages import TSM_LANGUAGES, TSM_UNSEEN, partitions
from polydistill.errors import PolydistillError

HUB_ID = "cardiffnlp/tweet_sentiment_multilingual"
LABELS = ("negative", "neutral", "positive")
_FILE_SPLIT = {"train": "train", "validation": "val", "test": "test"}


def _has_language_dirs(folder: Path) -> bool:
    return any((folder / lang / "test_text.txt").is_file() or (folder / lang / "train_text.txt").is_file()
               for lang in TSM_LANGUAGES)


def find_folder(root: Path) -> Path | None:
    for candidate in (root / "tsm" / "sentiment", root / "tsm", root / "sentiment", root):
        if candidate.is_dir() and _has_language_dirs(candidate):
            return candidate
    return None


def local_languages(folder: Path) -> list[str]:
    return [lang for lang in TSM_LANGUAGES if (folder / lang).is_dir()]


def read_local(folder: Path, language: str, options: LoadOptions) -> SplitColumns:
    out: SplitColumns = {}
    for split, stem in _FILE_SPLIT.items():
        text_path, label_path = folder / language / f"{stem}_text.txt", folder / language / f"{stem}_labels.txt"
        if not text_path.is_file() and not label_path.is_file():
            continue
        if not (text_path.is_file() and label_path.is_file()):
            raise PolydistillError(f"{text_path.parent} has only one of {text_path.name} / {label_path.name}; "
                                   "both are needed.")
        texts, raw_labels = read_text_lines(text_path), read_text_lines(label_path)
        if len(texts) != len(raw_labels):
            raise PolydistillError(f"{text_path} has {len(texts)} lines but {label_path.name} has {len(raw_labels)}; "
                                   "the files must be aligned line by line.")
        labels = []
        for lineno, raw in enumerate(raw_labels, 1):
            if raw.strip() not in ("0", "1", "2"):
                raise PolydistillError(f"{label_path} line {lineno} is {raw!r}, not a label id 0/1/2; "
                                       "the file is corrupt.")
            labels.append(int(raw))
        out[split] = {"text": texts, "label": labels}
    return out


def from_hub_split(dataset, where: str) -> dict[str, list]:
    """Map one split of the hub dataset (text, label as ClassLabel negative/neutral/positive or int)."""
    names = names_of(dataset, "label")
    if names and isinstance(names[0], int):  # plain ints follow the TweetEval convention 0/1/2
        names = [LABELS[i] for i in names]
    return {"text": list(dataset["text"]), "label": label_ids(names, LABELS, where)}


def read_hub(language: str, options: LoadOptions) -> SplitColumns:
    return load_hub_splits(HUB_ID, language, from_hub_split)


ADAPTER = DatasetAdapter(
    name="tsm", task="sequence", hub_id=HUB_ID, label_names=LABELS, valid=TSM_LANGUAGES,
    named=partitions(TSM_LANGUAGES, TSM_UNSEEN, ["english"]), test_only=(),
    find_folder=find_folder, local_languages=local_languages, read_local=read_local, read_hub=read_hub,
)

"""Universal NER v1 (Mayhew et al. 2024; CC BY-SA): PER / ORG / LOC in IOB2, one code per treebank.

Local layout: ``<folder>/UNER_<Lang>-<TB>/<code>-ud-{train,dev,test}.iob2``, tag in column 3. OTH
(hr_set, sr_set only) becomes O so every treebank shares the 7-label scheme. Test-only treebanks
(the PUDs, ceb_gja, tl_*) serve evaluation only. This machine lacks the v1 English-EWT train file;
the 2022-12-02 pre-release stand-in under ``_prerelease/`` is used only when asked for, with a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from polydistill.data.base import (
    DatasetAdapter,
    LoadOptions,
    SplitColumns,
    label_ids,
    load_hub_splits,
    names_of,
)
from polydistill.data.conll import normalise_tag, read_iob
from polydistill.data.languages import UNER_TEST_ONLY, UNER_TRAIN_TREEBANKS, UNER_UNSEEN, partitions

HUB_ID = "universalner/universal_ner"
LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
TREEBANKS = UNER_TRAIN_TREEBANKS + UNER_TEST_ONLY
_FILE_SPLIT = {"train": "train", "validation": "dev", "test": "test"}
PRERELEASE_EWT = Path("_prerelease/UNER_English-EWT/en_ewt-ud-train.2022-12-02.iob2")


def _files(folder: Path) -> dict[str, Path]:
    """code -> treebank directory, from the ``<code>-ud-<split>.iob2`` names found."""
    found: dict[str, Path] = {}
    for path in folder.glob("UNER_*/*-ud-*.iob2"):
        found.setdefault(path.name.split("-ud-")[0], path.parent)
    return found


def find_folder(root: Path) -> Path | None:
    for candidate in (root / "universal-ner", root / "uner", root / "universal_ner", root):
        if candidate.is_dir() and _files(candidate):
            return candidate
    return None


def local_languages(folder: Path) -> list[str]:
    present = _files(folder)
    return [code for code in TREEBANKS if code in present]


def read_local(folder: Path, code: str, options: LoadOptions) -> SplitColumns:
    directory = _files(folder)[code]
    out: SplitColumns = {}
    for split, stem in _FILE_SPLIT.items():
        path = directory / f"{code}-ud-{stem}.iob2"
        if split == "train" and not path.is_file() and code == "en_ewt":
            fallback = _english_train_fallback(folder, options)
            if fallback is None:
                continue
            path = fallback
        if not path.is_file():
            continue
        tokens, tags = read_iob(path)
        out[split] = {"tokens": tokens, "tags": [label_ids(row, LABELS, str(path)) for row in tags]}
    return out


def _english_train_fallback(folder: Path, options: LoadOptions) -> Path | None:
    prerelease = folder / PRERELEASE_EWT
    if options.allow_prerelease and prerelease.is_file():
        message = (f"using {prerelease} for en_ewt train: it is the 2022-12-02 pre-release, NOT UNER v1 "
                   "(labels differ slightly); never report its numbers as UNER v1.")
        warnings.warn(message, stacklevel=3)
        options.warnings.append(message)
        return prerelease
    if options.purpose == "train":
        hint = ("pass allow_prerelease=True (--allow-prerelease) to use the 2022-12-02 pre-release stand-in, "
                "which is not UNER v1" if prerelease.is_file() else "add en_ewt-ud-train.iob2 from UNER v1")
        message = f"en_ewt has no UNER v1 train file under {folder}, so its train split is empty; {hint}."
        warnings.warn(message, stacklevel=3)
        options.warnings.append(message)
    return None


def from_hub_split(dataset, where: str) -> dict[str, list]:
    """Map one split of ``universalner/universal_ner`` (tokens, ner_tags as ClassLabel ids or names)."""
    rows = names_of(dataset, "ner_tags")
    return {
        "tokens": [list(row) for row in dataset["tokens"]],
        "tags": [label_ids([normalise_tag(tag) for tag in row], LABELS, where) for row in rows],
    }


def read_hub(code: str, options: LoadOptions) -> SplitColumns:
    return load_hub_splits(HUB_ID, code, from_hub_split)


ADAPTER = DatasetAdapter(
    name="universal-ner", task="token", hub_id=HUB_ID, label_names=LABELS, valid=TREEBANKS,
    named=partitions(UNER_TRAIN_TREEBANKS, UNER_UNSEEN, ["en_ewt"], extra={"test-only": list(UNER_TEST_ONLY)}),
    test_only=UNER_TEST_ONLY,
    find_folder=find_folder, local_languages=local_languages, read_local=read_local, read_hub=read_hub,
)

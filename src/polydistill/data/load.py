"""``load_task_data``: one entry point for every dataset, local files or the Hugging Face hub."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polydistill.data import generic, massive, massive_slots, tsm, uner
from polydistill.data.base import DatasetAdapter, LoadOptions
from polydistill.data.languages import resolve_languages
from polydistill.data.subsets import cap_per_language, check_fraction, stratified_subset
from polydistill.data.types import LABEL, LANGUAGE, SPLITS, TAGS, TEXT, TOKENS, TaskData
from polydistill.errors import PolydistillError

DATA_ROOT_ENV = "POLYDISTILL_DATA_ROOT"
ADAPTERS: dict[str, DatasetAdapter] = {
    a.name: a for a in (massive.ADAPTER, massive_slots.ADAPTER, tsm.ADAPTER, uner.ADAPTER)}
ALIASES = {
    "uner": "universal-ner", "universal_ner": "universal-ner",
    "tweet_sentiment_multilingual": "tsm", "tweet-sentiment-multilingual": "tsm", "massive_slots": "massive-slots",
}
for _adapter in ADAPTERS.values():  # a hub id names its first adapter (AmazonScience/massive: the intents)
    if _adapter.hub_id:
        ALIASES.setdefault(_adapter.hub_id.lower(), _adapter.name)
_PURPOSES = {"train": "train", "evaluate": "evaluate", "eval": "evaluate", "evaluation": "evaluate", "test": "evaluate"}


def dataset_names() -> list[str]:
    return sorted(ADAPTERS)


def get_adapter(name: str | os.PathLike) -> DatasetAdapter:
    name = os.fspath(name)
    key = ALIASES.get(name.lower(), name.lower())
    if key in ADAPTERS:
        return ADAPTERS[key]
    path = Path(name).expanduser()
    if path.is_dir():
        return generic.make_adapter(path)
    if path.exists():
        raise PolydistillError(f"Dataset {name} is a file; pass the folder that holds its train/validation/test files.")
    if name.startswith((".", "~", os.sep)) or os.sep in name.rstrip(os.sep):
        raise PolydistillError(f"Dataset folder {name} does not exist; pass a folder of your own train/validation/test "
                               f"files or one of {', '.join(dataset_names())}.")
    raise PolydistillError(
        f"Unknown dataset '{name}'; use one of {', '.join(dataset_names())} (alias uner) "
        "or a directory of your own train/validation/test files."
    )


def data_folder(adapter: DatasetAdapter, data_root: str | os.PathLike | None) -> Path | None:
    """The local folder of ``adapter``'s files, or None for the hub (no root given anywhere)."""
    if adapter.hub_id is None:  # generic data is its own folder
        return adapter.find_folder(Path("."))
    root = data_root if data_root is not None else os.environ.get(DATA_ROOT_ENV) or None
    if root is None:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        raise PolydistillError(f"Data root {root} is not a directory; fix --data-root / ${DATA_ROOT_ENV}.")
    folder = adapter.find_folder(root)
    if folder is None:
        raise PolydistillError(
            f"No {adapter.name} files under {root}; give the folder that holds massive/, tsm/ and "
            "universal-ner/, or the dataset folder itself (see SPEC 'Data on this machine')."
        )
    return folder


def _features(task: str):
    from datasets import Features, Sequence, Value  # Sequence(Value) is List(Value) on datasets >= 4

    if task == "sequence":
        return Features({TEXT: Value("string"), LABEL: Value("int64"), LANGUAGE: Value("string")})
    return Features({TOKENS: Sequence(Value("string")), TAGS: Sequence(Value("int64")), LANGUAGE: Value("string")})


def content_fingerprint(splits, *parts: str) -> str:
    """A hash of the data itself (every split's Arrow buffers) plus ``parts``: the tokenisation cache key."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part.encode("utf-8") + b"\0")
    for split in sorted(splits):
        digest.update(split.encode() + b"\0")
        dataset = splits[split]
        tables = [dataset.data.table]
        if dataset._indices is not None:  # a select()/filter() view: the rows it picks matter too
            tables.append(dataset._indices.table)
        for table in tables:
            for column in table.column_names:
                digest.update(column.encode() + b"\0")
                for chunk in table.column(column).chunks:
                    digest.update(f"{chunk.offset}:{len(chunk)}".encode())  # slices share their buffers
                    for buffer in chunk.buffers():
                        if buffer is not None:
                            digest.update(buffer)
    return digest.hexdigest()


def load_task_data(
    name: str | os.PathLike,
    languages: str | list[str] | None = "all",
    data_root: str | os.PathLike | None = None,
    fraction: float | None = None,
    seed: int = 0,
    purpose: str = "train",
    allow_prerelease: bool = False,
) -> TaskData:
    """Load a dataset in the common schema with splits train / validation / test.

    ``name``: massive, massive-slots, tsm, universal-ner (alias uner), a hub id of those, or a directory of your
    own data (see ``generic``). ``data_root`` (or $POLYDISTILL_DATA_ROOT) is the folder holding
    massive/, tsm/, universal-ner/ or one dataset folder itself; without it the hub is used.
    ``languages``: all | seen | unseen | english | codes (list or comma string).
    ``fraction``: stratified subset of the *train* split per language and label (``subsets.py``).
    ``purpose="train"`` refuses test-only languages and empty train / validation splits;
    ``purpose="evaluate"`` allows them. ``allow_prerelease`` lets UNER en_ewt train come from the
    2022-12-02 pre-release file (not UNER v1; a warning says so).
    """
    from datasets import Dataset, DatasetDict

    if purpose not in _PURPOSES:
        raise PolydistillError(f"purpose must be 'train' or 'evaluate', got {purpose!r}.")
    purpose = _PURPOSES[purpose]
    if fraction is not None:
        check_fraction(fraction)
    adapter = get_adapter(name)
    folder = data_folder(adapter, data_root)
    codes = resolve_languages(languages, adapter.valid, adapter.named, adapter.name)
    _check_languages(adapter, folder, codes, purpose)

    options = LoadOptions(purpose=purpose, allow_prerelease=allow_prerelease)
    columns = _read_columns(adapter, folder, codes, options)
    features = _features(adapter.task)
    splits = DatasetDict({split: Dataset.from_dict(columns[split], features=features) for split in SPLITS})
    _check_splits(splits, adapter, codes, options)
    # the subset is a pure function of (data, fraction, seed), so hash the full data plus those two
    fingerprint = content_fingerprint(splits, adapter.name, adapter.task, *adapter.label_names)
    if fraction is not None and fraction < 1 and len(splits["train"]):
        splits["train"] = stratified_subset(splits["train"], adapter.task, list(adapter.label_names), fraction, seed)
        fingerprint = hashlib.blake2b(f"{fingerprint}|{fraction!r}|{seed}".encode(), digest_size=16).hexdigest()

    trainless = [code for code in codes if code in adapter.test_only]
    return TaskData(
        name=adapter.name,
        task=adapter.task,
        label_names=list(adapter.label_names),
        splits=splits,
        languages=codes,
        test_only_languages=trainless,
        fingerprint=fingerprint,
        source=str(folder) if folder is not None else f"hf://{adapter.hub_id}",
        warnings=list(options.warnings),
    )


def load_capped_task_data(
    name: str | os.PathLike,
    languages: str | list[str] | None = "all",
    data_root: str | os.PathLike | None = None,
    fraction: float | None = None,
    seed: int = 0,
    purpose: str = "train",
    *,
    max_dev_per_language: int | None = None,
    max_test_per_language: int | None = None,
    cap_seed: int = 0,
    on_cap: Callable[[str, int, int], None] | None = None,
) -> TaskData:
    """:func:`load_task_data`, then the validation / test splits capped at N examples per language
    (:func:`~polydistill.data.subsets.cap_per_language`: a fixed shuffle with ``cap_seed``, so every run
    evaluates on the same sample): the one place commands, grids and compress load task data and cap dev.
    A cap of None or 0 keeps the split whole (and in its order). ``on_cap(split, before, after)`` hears of
    each split a cap shrank. The fingerprint stays that of the loaded data (caps are the callers' to record)."""
    data = load_task_data(name, languages=languages, data_root=data_root, fraction=fraction, seed=seed,
                          purpose=purpose)
    for split, cap in (("validation", max_dev_per_language), ("test", max_test_per_language)):
        if cap and split in data.splits:
            before = len(data.splits[split])
            data.splits[split] = cap_per_language(data.splits[split], cap, seed=cap_seed)
            if on_cap is not None and len(data.splits[split]) < before:
                on_cap(split, before, len(data.splits[split]))
    return data


def _check_languages(adapter: DatasetAdapter, folder: Path | None, codes: list[str], purpose: str) -> None:
    """Refuse a language without files under ``folder`` and, for training, a test-only language."""
    if folder is not None:
        present = adapter.local_languages(folder)
        missing = [code for code in codes if code not in present]
        if missing:
            raise PolydistillError(f"{adapter.name} languages {' '.join(missing)} have no files under {folder}; "
                                   f"present: {' '.join(present) or 'none'}.")
    test_only = [code for code in codes if code in adapter.test_only]
    if purpose == "train" and test_only:
        raise PolydistillError(
            f"{' '.join(test_only)} {'is' if len(test_only) == 1 else 'are'} test-only in {adapter.name} (no train "
            "split): use them for evaluation only (purpose='evaluate' / polydistill evaluate), and train on "
            f"languages from: {' '.join(adapter.named['all'])}."
        )


def _read_columns(adapter: DatasetAdapter, folder: Path | None, codes: list[str], options: LoadOptions,
                  ) -> dict[str, dict[str, list[Any]]]:
    """Every split's text, label and language columns: the languages' rows one language after another."""
    text_col = TEXT if adapter.task == "sequence" else TOKENS
    label_col = LABEL if adapter.task == "sequence" else TAGS
    columns: dict[str, dict[str, list[Any]]] = {split: {text_col: [], label_col: [], LANGUAGE: []} for split in SPLITS}
    for code in codes:
        if folder is not None:
            per_split = adapter.read_local(folder, code, options)
        else:
            per_split = _read_hub(adapter, code, options)
        for split, cols in per_split.items():
            columns[split][text_col].extend(cols[text_col])
            columns[split][label_col].extend(cols[label_col])
            columns[split][LANGUAGE].extend([code] * len(cols[text_col]))
    return columns


def _check_splits(splits, adapter: DatasetAdapter, codes: list[str], options: LoadOptions) -> None:
    """Refuse data a run of ``options.purpose`` cannot use: for training an empty train or validation split or
    a train split with one label, for evaluation no example at all."""
    if options.purpose == "train":
        for split in ("train", "validation"):
            if len(splits[split]) == 0:
                extra = f" ({options.warnings[0]})" if options.warnings else ""
                which = f" for {' '.join(codes)}" if codes else ""
                examples = adapter.named["all"][:5]
                hint = (f"choose languages that have one (e.g. {' '.join(examples)})" if examples
                        else "add examples to its files")
                raise PolydistillError(f"The {split} split of {adapter.name}{which} is empty{extra}; {hint}.")
        _require_two_labels(splits["train"], adapter, codes)
    elif not any(len(ds) for ds in splits.values()):
        which = f" for {' '.join(codes)}" if codes else ""
        raise PolydistillError(f"{adapter.name} has no examples{which}; check the data files.")


def _require_two_labels(train, adapter: DatasetAdapter, codes: list[str]) -> None:
    """A train split with one label (or only ``O`` tags) would train a 1-class model that scores 100."""
    if adapter.task == "sequence":
        present = set(train.unique(LABEL))
    else:
        present = {tag for row in train[TAGS] for tag in row}
    if len(present) < 2:
        which = f" for {' '.join(codes)}" if codes else ""
        only = ", ".join(repr(adapter.label_names[i]) for i in sorted(present))
        raise PolydistillError(f"The train split of {adapter.name}{which} has a single label ({only}); a model "
                               "needs examples of at least two labels to learn anything, so add examples of "
                               "another label (or use this data only with evaluate).")


def _read_hub(adapter: DatasetAdapter, code: str, options: LoadOptions):
    if adapter.read_hub is None:
        raise PolydistillError(f"{adapter.name} has no copy on the Hugging Face hub; pass --data-root or set "
                               f"${DATA_ROOT_ENV} to its folder.")
    try:
        return adapter.read_hub(code, options)
    except PolydistillError:
        raise
    except Exception as err:  # network, missing config, offline mode: all fixable by a local copy
        raise PolydistillError(
            f"Could not load {adapter.hub_id} ({code}) from the Hugging Face hub ({type(err).__name__}: "
            f"{str(err)[:200]}); pass --data-root or set ${DATA_ROOT_ENV} to a local copy."
        ) from None

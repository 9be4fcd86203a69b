"""Tokenisation with the model's tokenizer, cached on disk, and the matching dynamic-padding collator.

Token classification labels only the first sub-word of each word (the others get -100), using the
fast tokenizer's ``word_ids``; words cut off by ``max_length`` are dropped, as in the usual HF recipe.
The word index of every position is kept (``word_ids``, -1 for specials) so that predictions map back
to words without tokenising again; the collator drops it before the model sees the batch.

The cache key is (content hash of the splits, tokenizer fingerprint, max length, recipe version); the
content hash covers dataset, languages, subset fraction and seed, and any later edit of the splits
(a per-language cap, a shuffle-and-select). Entries are
``DatasetDict.save_to_disk`` folders written atomically, so a grid tokenises each variant once and
concurrent runs never read half a cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydistill.architectures import get_adapter
from polydistill.data.load import content_fingerprint
from polydistill.data.types import IGNORE_INDEX, LABEL, LANGUAGE, TAGS, TEXT, TOKENS, TaskData
from polydistill.errors import PolydistillError
from polydistill.io import atomic_output_dir
from polydistill.ranks import is_main_process

CACHE_ENV = "POLYDISTILL_CACHE_DIR"
WORD_IDS = "word_ids"  # token tasks: the word of each position (-1: special token)
_RECIPE = "tokenize-v2"  # bump when the tokenisation logic changes, to invalidate old entries


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything in the tokenizer that changes its output (vocab, normaliser, specials)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise PolydistillError(f"{type(tokenizer).__name__} is not a fast tokenizer; polydistill needs one "
                               "(load it with AutoTokenizer, use_fast=True).")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(type(tokenizer).__name__.encode())
    # truncation / padding live in the backend state and change once the tokenizer is called: drop them
    state = json.loads(backend.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    digest.update(json.dumps(state, sort_keys=True).encode("utf-8"))
    digest.update(repr(sorted(tokenizer.special_tokens_map.items())).encode())
    digest.update(f"{tokenizer.padding_side}|{tokenizer.truncation_side}".encode())
    return digest.hexdigest()


def cache_key(data: TaskData, tokenizer, max_length: int) -> str:
    # hash the splits as they are now (~0.15 s for all of MASSIVE), not data.fingerprint: callers may
    # cap or reshuffle splits after loading, and a stale key would serve the wrong examples
    data_fp = content_fingerprint(data.splits, data.name, data.task, *data.label_names)
    text = f"{_RECIPE}|{data_fp}|{tokenizer_fingerprint(tokenizer)}|{max_length}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fit_max_length(max_length: int, *models, note: bool = True) -> int:
    """``max_length`` capped at the fewest positions any of ``models`` (loaded models or configs) allows,
    with a one-line note on stderr when it is capped: longer inputs would overflow the position
    embeddings (a shape error deep in the forward pass). Training, KD and lm-distill pick their
    tokenisation length here; evaluation caps the same way and reports it in its warnings."""
    limits = []
    for model in models:
        if model is None:
            continue
        config = getattr(model, "config", model)
        try:
            limit = get_adapter(config).position_limit(config)
        except PolydistillError:  # an architecture without an adapter: nothing to go by
            continue
        if limit:
            limits.append(limit)
    limit = min(limits, default=None)
    if limit is None or max_length <= limit:
        return max_length
    if limit < 8:
        raise PolydistillError(f"The model allows only {limit} positions; polydistill needs at least 8.")
    if note and is_main_process():
        print(f"note: max_length {max_length} exceeds the model's {limit} positions; using {limit}.",
              file=sys.stderr, flush=True)
    return limit


def align_first_subword(word_ids: list[int | None], tags: list[int]) -> list[int]:
    """Label of each position: the word's tag on its first sub-word, -100 on the rest and on specials."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE_INDEX if word is None or word == previous else tags[word])
        previous = word
    return labels


def _encode_batch(batch: dict[str, list], tokenizer, task: str, max_length: int) -> dict[str, list]:
    if task == "sequence":
        enc = tokenizer(batch[TEXT], truncation=True, max_length=max_length)
        out = dict(enc)
        out["labels"] = list(batch[LABEL])
        return out
    enc = tokenizer(batch[TOKENS], is_split_into_words=True, truncation=True, max_length=max_length)
    out = dict(enc)
    word_ids = [enc.word_ids(i) for i in range(len(batch[TAGS]))]
    out["labels"] = [align_first_subword(ids, tags) for ids, tags in zip(word_ids, batch[TAGS], strict=True)]
    out[WORD_IDS] = [[-1 if w is None else w for w in ids] for ids in word_ids]
    return out


def tokenize_task_data(data: TaskData, tokenizer, max_length: int = 128, cache_dir: str | os.PathLike | None = None):
    """``DatasetDict`` with input_ids, attention_mask (+token_type_ids), labels, language.

    ``cache_dir`` (or $POLYDISTILL_CACHE_DIR) turns on the on-disk cache; without either nothing is
    written.
    """
    from datasets import DatasetDict, load_from_disk

    if not getattr(tokenizer, "is_fast", False):
        raise PolydistillError(f"{type(tokenizer).__name__} is not a fast tokenizer; polydistill needs one for "
                               "word alignment (load it with AutoTokenizer, use_fast=True).")
    if max_length < 8:
        raise PolydistillError(f"max_length {max_length} is too small; use e.g. 64 or 128.")
    cache_dir = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
    entry = None
    if cache_dir is not None:
        entry = Path(cache_dir).expanduser() / f"{data.name}-{cache_key(data, tokenizer, max_length)}"
        if (entry / "dataset_dict.json").is_file():
            return load_from_disk(str(entry))

    source_columns = [TEXT, LABEL] if data.task == "sequence" else [TOKENS, TAGS]
    tokenized = DatasetDict({
        split: ds.map(
            _encode_batch, batched=True, remove_columns=source_columns,
            fn_kwargs={"tokenizer": tokenizer, "task": data.task, "max_length": max_length},
            desc=f"tokenising {data.name} {split}", load_from_cache_file=False,
        )
        for split, ds in data.splits.items()
    })
    if entry is None:
        return tokenized

    with atomic_output_dir(entry, overwrite=True, own=True) as tmp:
        tokenized.save_to_disk(str(tmp))
    return load_from_disk(str(entry))


KD_POSITIONS = "kd_positions"  # token tasks: the first sub-word of every word, labelled or not


@dataclass
class TaskCollator:
    """Dynamic padding for our tokenised splits; drops columns the model cannot take (``language``).

    ``word_positions``: for token tasks, also return ``kd_positions`` (1 at each word's first sub-word),
    the positions a KD prediction term scores, so unlabelled sentences (labels all -100) count too."""

    task: str
    tokenizer: Any
    word_positions: bool = False

    def __post_init__(self) -> None:
        from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

        self._inner: DataCollatorForTokenClassification | DataCollatorWithPadding
        if self.task == "token":
            self._inner = DataCollatorForTokenClassification(self.tokenizer, label_pad_token_id=IGNORE_INDEX)
        elif self.task == "sequence":
            self._inner = DataCollatorWithPadding(self.tokenizer)
        else:
            raise PolydistillError(f"task must be 'sequence' or 'token', got {self.task!r}.")

    def __call__(self, features: list[dict[str, Any]]):
        import torch

        indices = [f["example_index"] for f in features] if "example_index" in features[0] else None
        words = [f[WORD_IDS] for f in features] if self.word_positions and WORD_IDS in features[0] else None
        features = [{k: v for k, v in f.items()
                     if k not in (LANGUAGE, WORD_IDS, "example_index") and not isinstance(v, str)} for f in features]
        batch = self._inner(features)
        if indices is not None:  # the rows' positions, for the KD teacher-output cache
            batch["example_index"] = torch.tensor(indices)
        if words is not None:
            positions = torch.zeros_like(batch["attention_mask"])
            for row, ids in enumerate(words):
                for pos, word in enumerate(ids):
                    if word >= 0 and (pos == 0 or ids[pos - 1] != word):
                        positions[row, pos] = 1
            batch[KD_POSITIONS] = positions
        return batch


def data_collator(task: str, tokenizer, word_positions: bool = False) -> TaskCollator:
    return TaskCollator(task, tokenizer, word_positions)

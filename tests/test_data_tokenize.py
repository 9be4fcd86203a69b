"""Tokenisation, first-sub-word label alignment, the on-disk cache and the collator."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factories import make_unigram_tokenizer, make_wordpiece_tokenizer
from polydistill.data import load_task_data
from polydistill.data.tokenize import align_first_subword, data_collator, tokenize_task_data
from polydistill.errors import PolydistillError

FIX = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def uner():
    return load_task_data("uner", "da_ddt,hr_set", data_root=FIX)


@pytest.fixture(scope="module")
def massive():
    return load_task_data("massive", "en-US,de-DE", data_root=FIX)


def test_align_first_subword():
    assert align_first_subword([None, 0, 0, 1, 2, 2, None], [5, 6, 7]) == [-100, 5, -100, 6, 7, -100, -100]


def test_sequence_columns(massive):
    tok = make_wordpiece_tokenizer()
    out = tokenize_task_data(massive, tok, max_length=16)
    train = out["train"]
    assert set(train.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels", "language"}
    assert train["labels"] == massive.splits["train"]["label"]
    assert train["language"] == massive.splits["train"]["language"]
    assert max(len(ids) for ids in train["input_ids"]) <= 16
    # XLM-R style tokenizers make no token_type_ids
    assert "token_type_ids" not in tokenize_task_data(massive, make_unigram_tokenizer(), 16)["train"].column_names


@pytest.mark.parametrize("make_tok", [make_wordpiece_tokenizer, make_unigram_tokenizer])
def test_token_labels_on_first_subword(uner, make_tok):
    tok = make_tok()
    out = tokenize_task_data(uner, tok, max_length=128)
    for example, source in zip(out["train"], uner.splits["train"], strict=True):
        kept = [label for label in example["labels"] if label != -100]
        assert kept == source["tags"]  # one label per word, in order, nothing lost at this length
        words = tok(source["tokens"], is_split_into_words=True).word_ids()
        firsts = [i for i, w in enumerate(words) if w is not None and (i == 0 or words[i - 1] != w)]
        assert [i for i, label in enumerate(example["labels"]) if label != -100] == firsts


def test_truncation_drops_words_not_alignment(uner):
    out = tokenize_task_data(uner, make_wordpiece_tokenizer(), max_length=8)
    for example, source in zip(out["train"], uner.splits["train"], strict=True):
        assert len(example["input_ids"]) <= 8
        kept = [label for label in example["labels"] if label != -100]
        assert kept == source["tags"][: len(kept)]


def test_cache_hits_and_keys(uner, massive, tmp_path):
    tok = make_wordpiece_tokenizer()
    first = tokenize_task_data(uner, tok, max_length=32, cache_dir=tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith("universal-ner-")
    stamp = (tmp_path / entries[0] / "dataset_dict.json").stat().st_mtime_ns
    again = tokenize_task_data(uner, tok, max_length=32, cache_dir=tmp_path)  # tokenizer was used since: same key
    assert (tmp_path / entries[0] / "dataset_dict.json").stat().st_mtime_ns == stamp
    assert again["train"]["labels"] == first["train"]["labels"]
    tokenize_task_data(uner, tok, max_length=16, cache_dir=tmp_path)
    tokenize_task_data(uner, make_unigram_tokenizer(), max_length=32, cache_dir=tmp_path)
    tokenize_task_data(massive, tok, max_length=32, cache_dir=tmp_path)
    subset = load_task_data("massive", "en-US,de-DE", data_root=FIX, fraction=0.5)
    tokenize_task_data(subset, tok, max_length=32, cache_dir=tmp_path)
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 5 and not [n for n in names if n.startswith(".")]  # no temp leftovers


def test_no_cache_dir_writes_nothing(uner, tmp_path, monkeypatch):
    monkeypatch.delenv("POLYDISTILL_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    tokenize_task_data(uner, make_wordpiece_tokenizer(), max_length=32)
    assert list(tmp_path.iterdir()) == []


def test_slow_tokenizer_and_tiny_length_refused(uner):
    class Slow:
        is_fast = False

    with pytest.raises(PolydistillError, match="not a fast tokenizer"):
        tokenize_task_data(uner, Slow())
    with pytest.raises(PolydistillError, match="max_length 2 is too small"):
        tokenize_task_data(uner, make_wordpiece_tokenizer(), max_length=2)


def test_collators_pad_dynamically_and_drop_language(uner, massive):
    tok = make_wordpiece_tokenizer()
    tokens = tokenize_task_data(uner, tok, max_length=64)["train"]
    batch = data_collator("token", tok)([tokens[i] for i in range(3)])
    longest = max(len(tokens[i]["input_ids"]) for i in range(3))
    assert batch["input_ids"].shape == batch["labels"].shape == (3, longest)
    assert "language" not in batch
    short = min(range(3), key=lambda i: len(tokens[i]["input_ids"]))
    assert (batch["labels"][short, len(tokens[short]["input_ids"]):] == -100).all()
    seq = tokenize_task_data(massive, tok, max_length=64)["train"]
    batch = data_collator("sequence", tok)([seq[i] for i in range(4)])
    assert batch["labels"].dtype == torch.long and batch["labels"].shape == (4,)
    assert batch["attention_mask"].sum(1).tolist() == [len(seq[i]["input_ids"]) for i in range(4)]
    with pytest.raises(PolydistillError, match="task must be"):
        data_collator("regression", tok)


def test_cache_key_follows_later_edits_of_the_splits(massive, tmp_path):
    from polydistill.data.types import TaskData

    tok = make_wordpiece_tokenizer()
    full = tokenize_task_data(massive, tok, max_length=32, cache_dir=tmp_path)
    capped = TaskData(name=massive.name, task=massive.task, label_names=massive.label_names,
                      splits=massive.splits.copy(), languages=massive.languages, fingerprint=massive.fingerprint)
    capped.splits["test"] = capped.splits["test"].shuffle(seed=0).select(range(3))  # same stale fingerprint
    out = tokenize_task_data(capped, tok, max_length=32, cache_dir=tmp_path)
    assert len(out["test"]) == 3 and len(full["test"]) == 8
    assert len(list(tmp_path.iterdir())) == 2

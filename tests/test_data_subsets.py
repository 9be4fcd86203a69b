"""The stratified-subset rule (subsets.py docstring) and the generic adapter."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from polydistill.data import load_task_data
from polydistill.data.subsets import allocate, strata_of, stratified_indices, stratified_subset
from polydistill.errors import PolydistillError

FIX = Path(__file__).parent / "fixtures" / "data"


def test_allocate_keeps_one_per_label_when_the_budget_allows():
    counts = {"big": 800, "mid": 100, "rare": 4}
    # f*n = 9.04 >= 3 labels: every label keeps >= 1, the rest round(f*n_s)
    assert allocate(counts, 0.01) == {"big": 8, "mid": 1, "rare": 1}
    # f*n = 0.904 < 3 labels: plain rounding, but never an empty language
    assert allocate(counts, 0.001) == {"big": 1, "mid": 0, "rare": 0}
    assert allocate({"a": 2, "b": 2}, 0.1) == {"a": 1, "b": 0}  # f*n=0.4: the largest (ties by name) gives one
    assert allocate({"a": 3}, 1.0) == {"a": 3}
    assert allocate({"a": 5, "b": 5}, 0.5) == {"a": 3, "b": 3}  # half rounds up


def _synthetic(n_per_label: dict[str, int], languages=("xx", "yy")) -> tuple[list[str], list[str]]:
    strata, langs = [], []
    for lang in languages:
        for label, n in n_per_label.items():
            strata += [label] * n
            langs += [lang] * n
    return strata, langs


def test_indices_are_deterministic_nested_and_per_language():
    strata, langs = _synthetic({"a": 300, "b": 50, "c": 3})
    one = stratified_indices(strata, langs, 0.01, seed=0)
    assert one == stratified_indices(strata, langs, 0.01, seed=0)
    assert one != stratified_indices(strata, langs, 0.01, seed=1)
    five = stratified_indices(strata, langs, 0.05, seed=0)
    assert set(one) < set(five)  # nested across fractions under one seed
    for lang in ("xx", "yy"):
        kept = Counter(strata[i] for i in one if langs[i] == lang)
        assert kept == {"a": 3, "b": 1, "c": 1}
    # a language's subset does not depend on which other languages were loaded
    only_xx = [i for i, lang in enumerate(langs) if lang == "xx"]
    sub = stratified_indices([strata[i] for i in only_xx], ["xx"] * len(only_xx), 0.01, seed=0)
    assert sub == [i for i in one if langs[i] == "xx"]


def test_bad_fraction():
    for bad in (0, -0.1, 1.5, "0.1"):
        with pytest.raises(PolydistillError, match=r"fraction must be in \(0, 1\]"):
            stratified_indices(["a"], ["x"], bad)


def test_ner_strata_are_the_rarest_entity_type():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    tags = [[0, 1, 2], [0, 3], [1, 0, 3, 4], [0, 0]]
    # per counts 2 sentences, loc 2: tie broken by name (LOC < PER)
    assert strata_of("token", tags, ["x"] * 4, names) == ["PER", "LOC", "LOC", "O"]
    tags.append([1])  # PER now in 3 sentences: LOC is rarer
    assert strata_of("token", tags, ["x"] * 5, names)[2] == "LOC"


def test_stratified_subset_on_a_dataset_keeps_rows_in_order():
    strata, langs = _synthetic({"0": 40, "1": 20})
    ds = Dataset.from_dict({"text": [f"t{i}" for i in range(len(strata))],
                            "label": [int(s) for s in strata], "language": langs})
    sub = stratified_subset(ds, "sequence", ["zero", "one"], 0.1, seed=3)
    assert len(sub) == 12 and sub["text"] == sorted(sub["text"], key=lambda t: int(t[1:]))
    assert Counter(zip(sub["language"], sub["label"], strict=True)) == {("xx", 0): 4, ("xx", 1): 2,
                                                                       ("yy", 0): 4, ("yy", 1): 2}


def test_fraction_through_load_task_data_subsets_train_only():
    full = load_task_data("massive", "en-US,sw-KE", data_root=FIX)
    sub = load_task_data("massive", "en-US,sw-KE", data_root=FIX, fraction=0.5, seed=0)
    assert len(sub.splits["validation"]) == len(full.splits["validation"])
    assert len(sub.splits["test"]) == len(full.splits["test"])
    # 3 train examples per intent: round(1.5) = 2 per intent and locale
    assert Counter(zip(sub.splits["train"]["language"], sub.splits["train"]["label"], strict=True)) == {
        key: 2 for key in Counter(zip(full.splits["train"]["language"], full.splits["train"]["label"], strict=True))
    }
    assert sub.fingerprint != full.fingerprint
    assert sub.fingerprint == load_task_data("massive", "en-US,sw-KE", data_root=FIX, fraction=0.5).fingerprint
    assert sub.fingerprint != load_task_data("massive", "en-US,sw-KE", data_root=FIX, fraction=0.5,
                                             seed=1).fingerprint


def test_fraction_on_uner_keeps_entity_types():
    data = load_task_data("uner", "da_ddt,hr_set", data_root=FIX, fraction=0.5, seed=0)
    assert 0 < len(data.splits["train"]) < 8


# --- generic adapter -----------------------------------------------------------------------------

def test_generic_csv_with_languages(tmp_path):
    rows = "text,label,language\nhello,greet,en\nbye,leave,en\nhola,greet,es\nadios,leave,es\n"
    (tmp_path / "train.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "dev.csv").write_text(rows, encoding="utf-8")
    (tmp_path / "test.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "label": y, "language": "es"}) for t, y in [("hey", "greet")]) + "\n")
    # the test file is JSONL while train is CSV: table files are found per split
    data = load_task_data(str(tmp_path), "all")
    assert data.task == "sequence" and data.label_names == ["greet", "leave"]
    assert data.languages == ["en", "es"] and len(data.splits["test"]) == 1
    assert load_task_data(str(tmp_path), "english").languages == ["en"]
    with pytest.raises(PolydistillError, match="Unknown language 'seen'"):
        load_task_data(str(tmp_path), "seen")


def test_generic_label_order_file_and_bad_rows(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n')
    (tmp_path / "validation.jsonl").write_text('{"text": "c", "label": 1}\n')
    data = load_task_data(tmp_path)
    assert data.label_names == ["0", "1"] and data.languages == ["und"]
    (tmp_path / "labels.txt").write_text("1\n0\n")
    assert load_task_data(tmp_path).label_names == ["1", "0"]
    (tmp_path / "train.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(PolydistillError, match="train.jsonl line 1 lacks a 'label' key"):
        load_task_data(tmp_path)


def test_generic_conll_per_language_folders(tmp_path):
    for lang in ("de", "fr"):
        (tmp_path / lang).mkdir()
        for split in ("train", "dev", "test"):
            (tmp_path / lang / f"{split}.conll").write_text("Anna B-PER\nwohnt O\nin O\nBerlin B-LOC\n\nJa O\n")
    data = load_task_data(tmp_path, "de")
    assert data.task == "token" and data.label_names == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert data.splits["train"][0]["tags"] == [3, 0, 0, 1]


def test_generic_empty_directory(tmp_path):
    with pytest.raises(PolydistillError, match="holds no train/validation/test files"):
        load_task_data(tmp_path)


def test_content_fingerprint_sees_row_selection():
    from datasets import DatasetDict

    from polydistill.data.load import content_fingerprint

    ds = Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0], "language": ["x"] * 3})
    one, two = ds.select([0, 1]), ds.select([1, 2])
    assert content_fingerprint(DatasetDict({"train": one})) != content_fingerprint(DatasetDict({"train": two}))
    assert content_fingerprint(DatasetDict({"train": one})) == content_fingerprint(DatasetDict({"train": ds.select([0, 1])}))

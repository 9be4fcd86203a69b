"""Adapters, partitions and bad-input errors on the tiny upstream-format fixtures."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from polydistill.data import load_task_data
from polydistill.data import massive as massive_mod
from polydistill.data import tsm as tsm_mod
from polydistill.data import uner as uner_mod
from polydistill.data.languages import MASSIVE_LOCALES, MASSIVE_UNSEEN, resolve_languages
from polydistill.errors import PolydistillError

FIX = Path(__file__).parent / "fixtures" / "data"


def counts(data):
    return {split: len(ds) for split, ds in data.splits.items()}


# --- massive -------------------------------------------------------------------------------------

def test_massive_reads_gz_and_plain_jsonl_with_fixed_label_index():
    data = load_task_data("massive", ["en-US", "de-DE"], data_root=FIX)
    assert data.task == "sequence" and data.num_labels == 60
    assert data.label_names == sorted(data.label_names)  # fixed index = sorted intent names
    assert counts(data) == {"train": 24, "validation": 8, "test": 8}
    assert data.languages == ["de-DE", "en-US"]
    train = data.splits["train"]
    assert set(train["language"]) == {"en-US", "de-DE"}
    row = [r for r in train if r["text"] == "wake me up at nine am on friday"][0]
    assert data.label_names[row["label"]] == "alarm_set" and row["language"] == "en-US"
    # parallel data: the same ids keep the same intents in every locale
    by_lang = {lang: [y for y, lg in zip(train["label"], train["language"], strict=True) if lg == lang]
               for lang in ("en-US", "de-DE")}
    assert by_lang["en-US"] == by_lang["de-DE"]


def test_massive_root_may_be_the_dataset_folder_or_env(monkeypatch):
    a = load_task_data("massive", "en-US", data_root=FIX / "massive")
    b = load_task_data("massive", "en-US", data_root=FIX / "massive" / "data")
    monkeypatch.setenv("POLYDISTILL_DATA_ROOT", str(FIX))
    c = load_task_data("massive", "en-US")
    assert a.fingerprint == b.fingerprint == c.fingerprint
    assert c.source.endswith("massive/data")


def test_unknown_dataset_and_language_are_refused():
    with pytest.raises(PolydistillError, match="Unknown dataset 'massiv'.*massive"):
        load_task_data("massiv", data_root=FIX)
    with pytest.raises(PolydistillError, match="Unknown language 'xx-XX'.*en-US"):
        load_task_data("massive", "en-US,xx-XX", data_root=FIX)


def test_partition_needs_every_locale_on_disk():
    # the fixture has only 4 locales: 'unseen' must not silently shrink to the 2 present
    with pytest.raises(PolydistillError, match="have no files.*present: cy-GB de-DE en-US sw-KE"):
        load_task_data("massive", "unseen", data_root=FIX)


def test_corrupt_massive_file(tmp_path):
    folder = tmp_path / "massive" / "data"
    folder.mkdir(parents=True)
    good = gzip.open(FIX / "massive/data/en-US.jsonl.gz", "rt", encoding="utf-8").read()
    (folder / "en-US.jsonl").write_text(good + "{not json\n", encoding="utf-8")
    with pytest.raises(PolydistillError, match="line 21 is not a MASSIVE record"):
        load_task_data("massive", "en-US", data_root=tmp_path)
    (folder / "en-US.jsonl").write_text(good.replace("alarm_set", "alarm_sett"), encoding="utf-8")
    with pytest.raises(PolydistillError, match="label 'alarm_sett'"):
        load_task_data("massive", "en-US", data_root=tmp_path)
    (folder / "en-US.jsonl").unlink()
    (folder / "en-US.jsonl.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    with pytest.raises(PolydistillError, match="corrupt"):
        load_task_data("massive", "en-US", data_root=tmp_path)


def test_missing_root_and_wrong_root(tmp_path):
    with pytest.raises(PolydistillError, match="not a directory"):
        load_task_data("massive", "en-US", data_root=tmp_path / "nope")
    with pytest.raises(PolydistillError, match="No tsm files under"):
        load_task_data("tsm", "english", data_root=FIX / "massive")


def test_empty_split_is_an_error(tmp_path):
    folder = tmp_path / "massive"
    folder.mkdir()
    lines = gzip.open(FIX / "massive/data/en-US.jsonl.gz", "rt", encoding="utf-8").read().splitlines()
    (folder / "en-US.jsonl").write_text("\n".join(line for line in lines if '"dev"' not in line) + "\n", encoding="utf-8")
    with pytest.raises(PolydistillError, match="validation split of massive for en-US is empty"):
        load_task_data("massive", "en-US", data_root=tmp_path)
    # evaluation on the test split still works
    assert len(load_task_data("massive", "en-US", data_root=tmp_path, purpose="evaluate").splits["test"]) == 4


# --- tsm -----------------------------------------------------------------------------------------

def test_tsm_layout_and_label_names():
    data = load_task_data("tsm", "english,french", data_root=FIX)
    assert data.label_names == ["negative", "neutral", "positive"]
    assert counts(data) == {"train": 12, "validation": 6, "test": 6}
    train = data.splits["train"].filter(lambda r: r["language"] == "english")
    # U+2028 inside a tweet does not split the record
    assert any("\u2028" in text for text in train["text"])
    assert train["label"] == [0, 1, 2, 0, 1, 2]
    assert "dataset_name" not in data.splits["train"].column_names


def test_tsm_misaligned_and_bad_labels(tmp_path):
    shutil.copytree(FIX / "tsm", tmp_path / "tsm")
    labels = tmp_path / "tsm/sentiment/english/train_labels.txt"
    labels.write_text("0\n1\n2\n0\n1")
    with pytest.raises(PolydistillError, match="6 lines but train_labels.txt has 5"):
        load_task_data("tsm", "english", data_root=tmp_path)
    labels.write_text("0\n1\n2\n0\n1\npositive")
    with pytest.raises(PolydistillError, match="line 6 is 'positive'"):
        load_task_data("tsm", "english", data_root=tmp_path)


# --- universal-ner -------------------------------------------------------------------------------

def test_uner_reads_column_3_and_maps_oth_to_o():
    data = load_task_data("uner", "hr_set", data_root=FIX)
    assert data.name == "universal-ner" and data.task == "token"
    assert data.label_names == ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    first = data.splits["train"][0]
    assert first["tokens"][3:5] == ["Ustav", "Turske"]  # B-OTH I-OTH in the file
    assert first["tags"][3:5] == [0, 0]
    second = data.splits["train"][1]
    assert second["tokens"][0] == "Makedonija" and data.label_names[second["tags"][0]] == "B-LOC"
    assert all(len(t) == len(g) for t, g in zip(data.splits["train"]["tokens"], data.splits["train"]["tags"],
                                                strict=True))


def test_uner_test_only_treebank_is_for_evaluation_only():
    with pytest.raises(PolydistillError, match="de_pud is test-only.*evaluation only"):
        load_task_data("universal-ner", "da_ddt,de_pud", data_root=FIX)
    data = load_task_data("universal-ner", "da-DDT,de_pud", data_root=FIX, purpose="evaluate")
    assert data.languages == ["da_ddt", "de_pud"] and data.test_only_languages == ["de_pud"]
    assert set(data.splits["test"]["language"]) == {"da_ddt", "de_pud"}
    assert set(data.splits["train"]["language"]) == {"da_ddt"}


def test_uner_english_train_needs_explicit_prerelease():
    with pytest.warns(UserWarning, match="no UNER v1 train file"), \
            pytest.raises(PolydistillError, match="train split of universal-ner for en_ewt is empty.*allow_prerelease"):
        load_task_data("uner", "english", data_root=FIX)
    with pytest.warns(UserWarning, match="NOT UNER v1"):
        data = load_task_data("uner", "english", data_root=FIX, allow_prerelease=True)
    assert data.warnings and "NOT UNER v1" in data.warnings[0]
    tags = [data.label_names[t] for row in data.splits["train"]["tags"] for t in row]
    tokens = [tok for row in data.splits["train"]["tokens"] for tok in row]
    assert tags[tokens.index("Star")] == "O"  # stray B-O on pre-release lines
    assert tags[tokens.index("Dulaim")] == "O"  # OTH
    assert tags[tokens.index("Hawijah")] == "B-LOC"
    # evaluation never touches the pre-release file, and says nothing about it
    evaluation = load_task_data("uner", "english", data_root=FIX, purpose="evaluate")
    assert len(evaluation.splits["train"]) == 0 and not evaluation.warnings


def test_bad_iob_line(tmp_path):
    shutil.copytree(FIX / "universal-ner", tmp_path / "universal-ner")
    path = tmp_path / "universal-ner/UNER_Danish-DDT/da_ddt-ud-dev.iob2"
    path.write_text(path.read_text(encoding="utf-8") + "1\tKøbenhavn\tLOCATION\t-\t-\n", encoding="utf-8")
    with pytest.raises(PolydistillError, match="tag 'LOCATION', which is not IOB2"):
        load_task_data("uner", "da_ddt", data_root=tmp_path)


# --- partitions ----------------------------------------------------------------------------------

def test_named_partitions_follow_table_11():
    named = massive_mod.ADAPTER.named
    assert len(named["all"]) == 52 and len(named["unseen"]) == 27 and len(named["seen"]) == 25
    assert set(named["unseen"]) == set(MASSIVE_UNSEEN) and not set(named["seen"]) & set(MASSIVE_UNSEEN)
    assert resolve_languages("english", MASSIVE_LOCALES, named, "massive") == ["en-US"]
    assert tsm_mod.ADAPTER.named["seen"] == ["english", "german", "italian", "spanish"]
    uner_named = uner_mod.ADAPTER.named
    assert uner_named["seen"] == ["zh_gsd", "zh_gsdsimp", "hr_set", "en_ewt"]
    assert uner_named["unseen"] == ["da_ddt", "pt_bosque", "sr_set", "sk_snk", "sv_talbanken"]
    assert "de_pud" not in uner_named["all"] and "de_pud" in uner_named["test-only"]


def test_language_spec_forms():
    named, valid = massive_mod.ADAPTER.named, massive_mod.ADAPTER.valid
    assert resolve_languages(" EN-us , de-DE,en-US", valid, named, "m") == ["de-DE", "en-US"]
    assert resolve_languages(["unseen", "en-US"], valid, named, "m") == sorted(
        [*MASSIVE_UNSEEN, "en-US"], key=valid.index)
    with pytest.raises(PolydistillError, match="No languages given"):
        resolve_languages(" , ", valid, named, "m")


# --- hub schema mapping (the hub itself is unreachable here) ---------------------------------------

def test_hub_schema_mapping_uses_label_names_not_ids():
    from datasets import ClassLabel, Dataset, Features, List, Value

    # a hub split whose ClassLabel order differs from ours: mapping must go through the names
    intents = ClassLabel(names=["weather_query", "alarm_set"])
    ds = Dataset.from_dict({"utt": ["wake me", "rain?"], "intent": [1, 0]},
                           features=Features({"utt": Value("string"), "intent": intents}))
    cols = massive_mod.from_hub_split(ds, "hub")
    assert [massive_mod.INTENTS[i] for i in cols["label"]] == ["alarm_set", "weather_query"]

    tags = ClassLabel(names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-OTH", "I-OTH"])
    ds = Dataset.from_dict({"tokens": [["Ana", "in", "Zagreb", "Ustav"]], "ner_tags": [[1, 0, 5, 7]]},
                           features=Features({"tokens": List(Value("string")), "ner_tags": List(tags)}))
    cols = uner_mod.from_hub_split(ds, "hub")
    assert [uner_mod.LABELS[i] for i in cols["tags"][0]] == ["B-PER", "O", "B-LOC", "O"]

    ds = Dataset.from_dict({"text": ["meh"], "label": [2]},
                           features=Features({"text": Value("string"),
                                              "label": ClassLabel(names=["negative", "neutral", "positive"])}))
    assert tsm_mod.from_hub_split(ds, "hub")["label"] == [2]


def test_hub_failure_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("POLYDISTILL_DATA_ROOT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(PolydistillError, match="from the Hugging Face hub.*--data-root"):
        load_task_data("tsm", "english")

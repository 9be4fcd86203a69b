"""massive-slots: MASSIVE's ``annot_utt`` as B-/I-/O word tags over 55 slot types, scored with seqeval."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from tests.factories import make_tokenizer

from polydistill.data import load_task_data
from polydistill.data.massive_slots import LABELS, SLOT_TYPES, parse_annotation
from polydistill.data.tokenize import tokenize_task_data
from polydistill.errors import PolydistillError
from polydistill.evaluate.metrics import scores

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.mark.parametrize(("annotation", "words", "tags"), [
    ("wake me up at [time : nine am] on [date : friday]",
     ["wake", "me", "up", "at", "nine", "am", "on", "friday"], ["O", "O", "O", "O", "B-time", "I-time", "O", "B-date"]),
    # ja-JP: no spaces in the text; the annotation spaces each bracket, so the words are the runs between them
    ("[date : 金曜日] の [time : 午前九時] に起こしてください",
     ["金曜日", "の", "午前九時", "に起こしてください"], ["B-date", "O", "B-time", "O"]),
    ("[date : 星期五] 早上 [time : 九点] 叫醒我", ["星期五", "早上", "九点", "叫醒我"], ["B-date", "O", "B-time", "O"]),
    ("ปลุกฉัน ตอน [time : เก้าโมงเช้า] [date : วันศุกร์]",
     ["ปลุกฉัน", "ตอน", "เก้าโมงเช้า", "วันศุกร์"], ["O", "O", "B-time", "B-date"]),
    ("أيقظني [time : الساعة التاسعة صباحا]", ["أيقظني", "الساعة", "التاسعة", "صباحا"],
     ["O", "B-time", "I-time", "I-time"]),
    ("[place_name : new york]", ["new", "york"], ["B-place_name", "I-place_name"]),
    ("olly quiet", ["olly", "quiet"], ["O", "O"]),
])
def test_parse_annotation_by_hand(annotation, words, tags):
    assert parse_annotation(annotation) == (words, tags)


@pytest.mark.parametrize("bad", ["wake me [time : nine", "wake ] me", "[time nine am]"])
def test_malformed_annotation_is_refused(bad):
    with pytest.raises(PolydistillError, match="corrupt"):
        parse_annotation(bad)


def test_label_scheme():
    assert len(SLOT_TYPES) == 55 and len(LABELS) == 111 and LABELS[0] == "O"
    assert LABELS[1:3] == ("B-alarm_type", "I-alarm_type")


def _hand_parse(annotation: str) -> tuple[list[str], list[str]]:
    """An independent character scan: the reference the loader is compared with."""
    words, tags, slot, inside, first = [], [], None, False, True
    buffer = ""

    def flush():
        nonlocal buffer, first
        for word in buffer.split():
            words.append(word)
            tags.append("O" if slot is None else ("B-" if first else "I-") + slot)
            first = False if slot is not None else first
        buffer = ""

    for char in annotation:
        if char == "[":
            flush()
            inside, buffer = True, ""
        elif char == "]":
            flush()
            slot, inside, first = None, False, True
        elif inside and slot is None and buffer.endswith(" ") and char == ":":
            slot, buffer, first = buffer.strip(), "", True
        else:
            buffer += char
    flush()
    return words, tags


def _records(folder: Path, locale: str) -> list[dict]:
    path = next(folder.glob(f"{locale}.jsonl*"))
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _by_split(records):
    split = {"train": "train", "dev": "validation", "test": "test"}
    out: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for record in records:
        out[split[record["partition"]]].append(record)
    return out


def _check_locale(folder: Path, data, locale: str) -> int:
    checked = 0
    for split, records in _by_split(_records(folder, locale)).items():
        rows = data.splits[split].filter(lambda lang: lang == locale, input_columns="language")
        assert len(rows) == len(records)
        for record, tokens, tag_ids in zip(records, rows["tokens"], rows["tags"], strict=True):
            words, tags = _hand_parse(record["annot_utt"])
            assert tokens == words and [LABELS[i] for i in tag_ids] == tags, record["annot_utt"]
            joined = "".join(words) if locale in ("ja-JP", "zh-CN", "zh-TW") else " ".join(words)
            utt = record["utt"]
            assert joined == ("".join(utt.split()) if locale in ("ja-JP", "zh-CN", "zh-TW") else " ".join(utt.split()))
            checked += 1
    return checked


def test_fixture_locales_equal_the_hand_parse():
    folder = FIXTURES / "massive" / "data"
    data = load_task_data("massive-slots", "cy,de,en,sw", data_root=FIXTURES, purpose="evaluate")
    assert data.task == "token" and data.label_names == list(LABELS)
    assert data.languages == ["cy-GB", "de-DE", "en-US", "sw-KE"]
    assert sum(_check_locale(folder, data, locale) for locale in data.languages) == 80


def test_same_partitions_and_order_as_the_intent_task():
    slots = load_task_data("massive-slots", "cy,de,en,sw", data_root=FIXTURES, purpose="evaluate")
    intents = load_task_data("massive", "cy,de,en,sw", data_root=FIXTURES, purpose="evaluate")
    for split in ("train", "validation", "test"):
        assert slots.splits[split]["language"] == intents.splits[split]["language"]
        assert [" ".join(t) for t in slots.splits[split]["tokens"]] == [
            " ".join(text.split()) for text in intents.splits[split]["text"]]
    assert load_task_data("massive_slots", "en", data_root=FIXTURES).languages == ["en-US"]  # alias, ISO code


@pytest.mark.slow
@pytest.mark.parametrize("locale", ["ja-JP", "zh-CN", "zh-TW", "th-TH", "ar-SA", "ru-RU", "ko-KR", "hi-IN", "am-ET"])
def test_real_locales_in_several_scripts_equal_the_hand_parse(shared_data, locale):
    data = load_task_data("massive-slots", locale, data_root=shared_data)
    assert _check_locale(shared_data / "massive" / "data", data, locale) == 16_521


def test_entity_f1_through_tokenisation_equals_seqeval_on_words():
    data = load_task_data("massive-slots", "cy,de,en,sw", data_root=FIXTURES, purpose="evaluate")
    tokenizer = make_tokenizer("bert")
    encoded = tokenize_task_data(data, tokenizer, max_length=128, cache_dir=None)["test"]
    gold = [[LABELS[i] for i in row] for row in data.splits["test"]["tags"]]
    rng = np.random.default_rng(0)
    width = max(len(row) for row in encoded["labels"])
    labels = np.full((len(encoded), width), -100)
    logits = rng.normal(size=(len(encoded), width, len(LABELS)))
    predicted = []
    for i, (row, tags) in enumerate(zip(encoded["labels"], gold, strict=True)):
        labels[i, : len(row)] = row
        positions = [j for j, value in enumerate(row) if value != -100]
        assert len(positions) == len(tags)  # every word is scored: none cut off, none counted twice
        # make half of the words right, the rest whatever the random logits say
        for k, j in enumerate(positions):
            if k % 2 == 0:
                logits[i, j, LABELS.index(tags[k])] = 100.0
        predicted.append([LABELS[int(logits[i, j].argmax())] for j in positions])
    result = scores("token", logits, labels, list(LABELS))
    assert result["f1"] == pytest.approx(seqeval_f1(gold, predicted, zero_division=0), abs=1e-12)
    assert 0.0 < result["f1"] < 1.0

"""Bad data files in the generic format (issue #35, "strict data parsing"): one sentence, never a wrong model.

The conventions of ``test_bad_inputs.py``: every case runs the real command line (``polydistill
finetune`` on a tiny model, so a lenient parse would save a model) and must end with exit code 2, one
``error:`` line naming the file and line, no traceback, no output written and every input file
byte-identical afterwards. A case is a function ``tmp_path -> (files, needles)``: the data folder's
files (name -> content) and the words the sentence must hold. The valid-but-unusual inputs (a BOM,
quoted commas, a labels.txt naming near-duplicates) are loaded and checked at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factories import make_model_dir
from polydistill.data import load_task_data
from test_bad_inputs import FAST, _snapshot, check_one_sentence, run_cli

BOM = "\ufeff"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """An encoder without a head: finetune adds the one the data asks for (sequence or token)."""
    return make_model_dir(tmp_path_factory.mktemp("bad-data"), "bert", "base", name="base")


def _write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return folder


def _jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


GOOD_DEV = "text,label\nsunny day,weather\nsome jazz,music\n"
GOOD_TRAIN = "text,label\nrainy day,weather\nplay jazz,music\n"
GOOD_CONLL = "Anna\tB-PER\nwohnt\tO\nin\tO\nBerlin\tB-LOC\n"

# name -> (task, files of the data folder, needles of the sentence)
CASES: dict[str, tuple[str, dict[str, str | bytes], tuple[str, ...]]] = {
    # rows
    "csv-row-missing-label": ("sequence", {"train.csv": "text,label\nplay jazz,music\nrainy day\n", "dev.csv": GOOD_DEV},
                              ("train.csv line 3", "1 field", "header has 2")),
    "csv-empty-label": ("sequence", {"train.csv": "text,label\nplay jazz,music\nrainy day,\n", "dev.csv": GOOD_DEV},
                        ("train.csv line 3", "empty label")),
    "csv-blank-label": ("sequence", {"train.csv": "text,label\nplay jazz,music\nrainy day,  \n", "dev.csv": GOOD_DEV},
                        ("train.csv line 3", "empty label")),
    "csv-empty-text": ("sequence", {"train.csv": "text,label\nplay jazz,music\n   ,weather\n", "dev.csv": GOOD_DEV},
                       ("train.csv line 3", "empty text")),
    "csv-unquoted-comma": ("sequence", {"train.csv": "text,label,language\nrain, wind,weather,en\nplay jazz,music,en\n",
                                        "dev.csv": GOOD_DEV}, ("train.csv line 2", "4 fields", "header has 3", "quote")),
    "csv-bad-quoting": ("sequence", {"train.csv": 'text,label\n"play" jazz,music\nrainy day,weather\n',
                                     "dev.csv": GOOD_DEV}, ("train.csv line 2", "not valid CSV")),
    "csv-line-after-multiline-text": ("sequence", {"train.csv": 'text,label\n"two\nlines",music\nrainy day\n',
                                                   "dev.csv": GOOD_DEV}, ("train.csv line 4", "1 field")),
    "csv-empty-language": ("sequence", {"train.csv": "text,label,language\nplay jazz,music,en\nrainy day,weather,\n",
                                        "dev.csv": GOOD_DEV}, ("train.csv line 3", "empty language")),
    "tsv-extra-field": ("sequence", {"train.tsv": "text\tlabel\nplay jazz\tmusic\nrainy\tday\tweather\n",
                                     "dev.csv": GOOD_DEV}, ("train.tsv line 3", "3 fields", "header has 2")),
    "jsonl-null-text": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                           {"text": None, "label": "weather"}),
                                     "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "no text")),
    "jsonl-null-label": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                            {"text": "rainy day", "label": None}),
                                      "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "no label")),
    "jsonl-missing-label": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                               {"text": "rainy day"}),
                                         "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "lacks a 'label' key")),
    "jsonl-text-not-a-string": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                                   {"text": 42, "label": "weather"}),
                                             "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "not a string")),
    "jsonl-duplicate-key": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                               '{"text": "rain", "label": "music", "label": "weather"}'),
                                         "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "'label' twice")),
    "jsonl-not-an-object": ("sequence", {"train.jsonl": _jsonl({"text": "play jazz", "label": "music"},
                                                               ["rainy day", "weather"]),
                                         "dev.csv": GOOD_DEV}, ("train.jsonl line 2", "not an object")),
    # header
    "csv-duplicate-header": ("sequence", {"train.csv": "text,label,label\nplay jazz,music,weather\nrain,weather,music\n",
                                          "dev.csv": GOOD_DEV}, ("train.csv line 1", "'label' twice")),
    "csv-no-header": ("sequence", {"train.csv": "play jazz,music\nrainy day,weather\n", "dev.csv": GOOD_DEV},
                      ("train.csv line 1", "'text'", "'label'")),
    # near-duplicate labels and languages
    "labels-1-and-1.0": ("sequence", {"train.csv": "text,label\nplay jazz,1\nrainy day,1.0\nhello,0\n",
                                      "dev.csv": "text,label\nsome jazz,1\nsun,0\n"},
                         ("'1' (train.csv line 2)", "'1.0' (train.csv line 3)", "labels.txt")),
    "labels-trailing-space": ("sequence", {"train.csv": "text,label\nplay jazz,music\nsome jazz,music \nrain,weather\n",
                                           "dev.csv": GOOD_DEV}, ("'music' (train.csv line 2)", "'music '")),
    "labels-case-across-splits": ("sequence", {"train.csv": GOOD_TRAIN, "dev.csv": "text,label\nsun,weather\njazz,Music\n"},
                                  ("'Music' (dev.csv line 3)", "'music' (train.csv line 3)")),
    "languages-EN-and-en": ("sequence", {"train.csv": "text,label,language\nplay jazz,music,EN\nrain,weather,en\n",
                                         "dev.csv": GOOD_DEV}, ("'EN' (train.csv line 2)", "'en' (train.csv line 3)")),
    # labels.txt
    "labels-txt-duplicate-line": ("sequence", {"train.csv": GOOD_TRAIN, "dev.csv": GOOD_DEV,
                                               "labels.txt": "music\nweather\nmusic \n"},
                                  ("labels.txt line 3", "repeats", "'music'")),
    "label-not-in-labels-txt": ("sequence", {"train.csv": GOOD_TRAIN + "hello,greeting\n", "dev.csv": GOOD_DEV,
                                             "labels.txt": "music\nweather\n"},
                                ("train.csv line 4", "'greeting'", "labels.txt")),
    # one label
    "one-label": ("sequence", {"train.csv": "text,label\nplay jazz,music\nsome jazz,music\n",
                               "dev.csv": "text,label\nmore jazz,music\n"}, ("single label", "'music'")),
    "one-label-in-train-despite-labels-txt": ("sequence", {"train.csv": "text,label\nplay jazz,music\nsome jazz,music\n",
                                                           "dev.csv": GOOD_DEV, "labels.txt": "music\nweather\n"},
                                              ("single label", "'music'")),
    # token tasks (CoNLL / IOB2)
    "conll-missing-tag": ("token", {"train.conll": "Anna\tB-PER\nwohnt\nin\tO\n", "dev.conll": GOOD_CONLL},
                          ("train.conll line 2", "1 column")),
    "conll-empty-tag": ("token", {"train.conll": "Anna\tB-PER\nwohnt\t\nin\tO\n", "dev.conll": GOOD_CONLL},
                        ("train.conll line 2", "empty tag")),
    "conll-missing-middle-column": ("token", {"train.conll": "Anna\tNE\tB-PER\nwohnt\tO\n", "dev.conll": GOOD_CONLL},
                                    ("train.conll line 2", "2 columns", "line 1 has 3")),
    "conll-type-case": ("token", {"train.conll": "Anna\tB-PER\nund\tO\nBob\tB-per\n", "dev.conll": GOOD_CONLL},
                        ("'PER' (train.conll line 1)", "'per' (train.conll line 3)")),
    "conll-tag-not-in-labels-txt": ("token", {"train.conll": GOOD_CONLL + "Paris\tB-GPE\n", "dev.conll": GOOD_CONLL,
                                              "labels.txt": "O\nB-PER\nI-PER\nB-LOC\nI-LOC\n"},
                                    ("train.conll line 5", "'B-GPE'", "labels.txt")),
    "conll-labels-txt-duplicate-line": ("token", {"train.conll": GOOD_CONLL, "dev.conll": GOOD_CONLL,
                                                  "labels.txt": "O\nB-PER\nI-PER\nB-PER\nB-LOC\nI-LOC\n"},
                                        ("labels.txt line 4", "repeats")),
    "conll-only-O": ("token", {"train.conll": "Anna\tO\nwohnt\tO\n", "dev.conll": GOOD_CONLL}, ("single label", "'O'")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_data_file(name, model, tmp_path, capsys):
    task, files, needles = CASES[name]
    data = _write(tmp_path / "data", files)
    before, model_before = _snapshot(data), _snapshot(model)
    out = tmp_path / "ft"
    code, stdout, err = run_cli(["finetune", model, "--dataset", data, "--out", out, *FAST], capsys)
    assert code == 2, f"exit {code}\nstdout: {stdout[-2000:]}\nstderr: {err[-3000:]}"
    sentence = check_one_sentence(err)
    print(sentence)  # shown with a failure report
    for needle in needles:
        assert needle in sentence, sentence
    assert _snapshot(data) == before and _snapshot(model) == model_before, "an input file changed"
    assert not out.exists() and not list(tmp_path.glob(".ft.*")) and not (tmp_path / "ft.work").exists()


# ---------------------------------------------------------------------------------------- valid inputs

def test_bom_csv_trains(model, tmp_path, capsys):
    """Excel's 'CSV UTF-8' starts with a BOM: the header is still text,label (it used to be refused)."""
    data = _write(tmp_path / "data", {"train.csv": (BOM + "text,label\n" + "rainy day,weather\nplay jazz,music\n" * 4)
                                      .encode("utf-8"), "dev.csv": (BOM + GOOD_DEV).encode("utf-8")})
    out = tmp_path / "ft"
    code, stdout, err = run_cli(["finetune", model, "--dataset", data, "--out", out, *FAST], capsys)
    assert code == 0, err[-3000:]
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert sorted(config["id2label"].values()) == ["music", "weather"]


def test_bom_jsonl_tsv_conll_and_labels_txt(tmp_path):
    _write(tmp_path / "j", {"train.jsonl": BOM + _jsonl({"text": "a", "label": "x"}, {"text": "b", "label": "y"}),
                            "labels.txt": BOM + "y\nx\n"})
    assert load_task_data(tmp_path / "j", purpose="evaluate").label_names == ["y", "x"]
    _write(tmp_path / "t", {"train.tsv": BOM + "text\tlabel\na\tx\nb\ty\n"})
    assert load_task_data(tmp_path / "t", purpose="evaluate").splits["train"]["text"] == ["a", "b"]
    _write(tmp_path / "c", {"train.conll": BOM + GOOD_CONLL})
    assert load_task_data(tmp_path / "c", purpose="evaluate").splits["train"]["tokens"] == [["Anna", "wohnt", "in", "Berlin"]]


def test_quoted_fields_blank_rows_and_stripped_labels(tmp_path):
    rows = ('text,label,language,,\n"rain, wind and ""fog""", weather ,en ,,\n"two\nlines",music,en ,,\n,,,,\n\n'
            "play jazz,music,en ,,\n")  # one spelling each: stripped, not a near-duplicate; Excel's empty columns
    _write(tmp_path, {"train.csv": rows})
    data = load_task_data(tmp_path, purpose="evaluate")
    train = data.splits["train"]
    assert train["text"] == ['rain, wind and "fog"', "two\nlines", "play jazz"]
    assert data.label_names == ["music", "weather"] and [data.label_names[i] for i in train["label"]] == [
        "weather", "music", "music"]
    assert data.languages == ["en"]


def test_labels_txt_names_near_duplicates(tmp_path):
    """Near-duplicates are the user's call once labels.txt names the label set: rows match it stripped."""
    _write(tmp_path, {"train.csv": "text,label\na,1\nb,1.0\nc,music \nd,music\n", "labels.txt": "music\n1\n1.0\n"})
    data = load_task_data(tmp_path, purpose="evaluate")
    assert data.label_names == ["music", "1", "1.0"]
    assert data.splits["train"]["label"] == [1, 2, 0, 0]


def test_numeric_labels_keep_numeric_order(tmp_path):
    _write(tmp_path, {"train.jsonl": _jsonl(*({"text": f"t{i}", "label": label} for i, label in enumerate([10, 2, "2"])))})
    data = load_task_data(tmp_path, purpose="evaluate")
    assert data.label_names == ["2", "10"] and data.splits["train"]["label"] == [1, 0, 0]


def test_one_label_is_fine_for_evaluation(tmp_path):
    _write(tmp_path, {"test.csv": "text,label\nplay jazz,music\nsome jazz,music\n"})
    data = load_task_data(tmp_path, purpose="evaluate")
    assert data.label_names == ["music"] and len(data.splits["test"]) == 2

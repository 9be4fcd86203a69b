"""``polydistill evaluate`` and ``polydistill data show`` end to end on fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factories import make_model
from polydistill.cli import main
from polydistill.data import load_task_data

FIX = Path(__file__).parent / "fixtures" / "data"


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def model_dir(tmp_path, task, label_names, arch="bert"):
    model, tok = make_model(arch, task, num_labels=len(label_names))
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}
    out = tmp_path / f"{arch}-{task}"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_evaluate_cli_writes_json_and_table(tmp_path, capsys):
    labels = load_task_data("massive", "en-US", data_root=FIX).label_names
    model = model_dir(tmp_path, "sequence", labels)
    out = tmp_path / "reports" / "report.json"
    code, stdout, _ = run(["evaluate", "--model", str(model), "--dataset", "massive", "--split", "test",
                           "--languages", "en-US,sw-KE,cy-GB", "--data-root", str(FIX), "--out", str(out),
                           "--max-length", "32"], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    assert report["languages"] == ["cy-GB", "en-US", "sw-KE"] and report["overall"]["support"] == 12
    assert set(report["per_language"]) == {"cy-GB", "en-US", "sw-KE"}
    assert report["groups"]["unseen"]["languages"] == ["cy-GB", "sw-KE"]
    assert "majority" in report["baselines"] and "versions" in report
    assert "overall" in stdout and "sw-KE" in stdout and "macro-F1" in stdout
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # atomic write, no temp files


def test_evaluate_cli_ner_on_test_only_treebank(tmp_path, capsys):
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    model = model_dir(tmp_path, "token", labels, arch="xlm-roberta")
    out = tmp_path / "ner.json"
    code, stdout, _ = run(["evaluate", "-m", str(model), "-d", "uner", "-l", "de_pud,da_ddt", "--data-root",
                           str(FIX), "-o", str(out), "--random-runs", "3"], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    assert report["baselines"]["random"]["runs"] == 3
    assert report["groups"]["test-only"]["languages"] == ["de_pud"]
    assert "seqeval F1" in stdout


def test_evaluate_cli_errors_exit_2(tmp_path, capsys):
    model = model_dir(tmp_path, "sequence", ["negative", "neutral", "positive"])
    code, _, err = run(["evaluate", "-m", str(model), "-d", "massive", "-l", "en-US", "--data-root", str(FIX)], capsys)
    assert code == 2 and "not the dataset's 60 labels" in err and "Traceback" not in err
    code, _, err = run(["evaluate", "-m", str(model), "-d", "tsm", "-l", "klingon", "--data-root", str(FIX)], capsys)
    assert code == 2 and "Unknown language 'klingon'" in err
    code, _, err = run(["evaluate", "-m", str(tmp_path / "missing"), "-d", "tsm", "-l", "english",
                        "--data-root", str(FIX)], capsys)
    assert code == 2 and "does not exist" in err


def test_data_show(capsys):
    code, stdout, _ = run(["data", "show", "uner", "--data-root", str(FIX), "-l", "da_ddt,de_pud"], capsys)
    assert code == 0 and "de_pud (test-only)" in stdout and "B-LOC" in stdout
    code, _, err = run(["data", "show", "uner", "--data-root", str(FIX), "-l", "de_pud", "--purpose", "train"], capsys)
    assert code == 2 and "test-only" in err

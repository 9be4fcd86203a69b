"""A tiny real grid (tiny random BERT teacher, invented tsm-format data): it runs end to end, and
SIGKILLed at several points then re-run it ends with the same table and no lost/duplicated runs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from factories import CORPUS, make_model_dir
from polydistill.experiments.grid import expand
from polydistill.experiments.report import write_report
from polydistill.experiments.runner import run_grid
from polydistill.experiments.schema import parse_config
from polydistill.experiments.store import ResultStore, decode_predictions
from polydistill.reporting.stats import group_examples

LANGS = ("english", "spanish", "french")  # french is in tsm's unseen partition


def write_tsm(root: Path, per_split=(12, 6, 6)) -> Path:
    """Invented tsm-layout lines (no real tweet is ever committed): label follows a keyword."""
    rng = random.Random(0)
    cue = {0: "hallo welt das ist", 1: "what is the weather", 2: "play some jazz music"}
    for lang in LANGS:
        folder = root / "tsm" / "sentiment" / lang
        folder.mkdir(parents=True)
        for stem, n in zip(("train", "val", "test"), per_split, strict=True):
            labels = [i % 3 for i in range(n)]
            texts = [f"{cue[y]} {rng.choice(CORPUS)}" for y in labels]
            (folder / f"{stem}_text.txt").write_text("\n".join(texts) + "\n")
            (folder / f"{stem}_labels.txt").write_text("\n".join(map(str, labels)) + "\n")
    return root


def grid_dict(tmp_path: Path) -> dict:
    teacher = make_model_dir(tmp_path / "models", "bert", "base")
    training = {"epochs": 4, "learning_rate": 3e-3, "batch_size": 4, "eval_steps": 6, "max_length": 32,
                "logging_steps": 1}
    return {
        "name": "tiny",
        "data_root": str(write_tsm(tmp_path / "data")),
        "teachers": [{"name": "tiny", "model": str(teacher), "train_languages": ["english", "spanish"]}],
        "datasets": [{"name": "tsm"}],
        "eval_languages": {"seen": ["english", "spanish"], "unseen": ["french"]},
        "seeds": [0],
        "copy_without_finetune": True,
        "students": {"inits": ["from-scratch", "from-teacher"], "kd": [False, True], "layers": [2]},
        "teacher_training": training,
        "student_training": training,
        "torch_threads": 1,
        "teacher_gate_margin": None,  # 24 invented lines make no real teacher: this grid tests resuming
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid")
    config = grid_dict(tmp)
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = tmp / "reference"
    summary = run_grid(parse_config(config), reference)
    return {"tmp": tmp, "config": config, "path": path, "reference": reference, "summary": summary}


def test_grid_runs_end_to_end_and_records_everything(tiny):
    specs = expand(parse_config(tiny["config"]))
    assert len(specs) == 6 and len(tiny["summary"].finished) == 6
    store = ResultStore(tiny["reference"])
    records = {r["run_id"]: r for r in store.records()}
    assert set(records) == {s.run_id for s in specs}
    for rec in records.values():
        assert set(rec["metrics"]["groups"]) == {"seen", "unseen"}
        assert set(rec["metrics"]["per_language"]) == set(LANGS)
        assert 0.0 <= rec["metrics"]["groups"]["seen"]["f1"] <= 1.0
        assert rec["versions"]["torch"] and rec["wall_seconds"] > 0
        if rec["spec"]["kind"] != "copy":
            assert rec["loss_curve"] and rec["best_dev_f1"] is not None
        # per-example gold and predictions of every eval group: they give back the recorded scores
        task, names, groups = decode_predictions(rec)
        assert task == "sequence" and names == ["negative", "neutral", "positive"] and set(groups) == {"seen", "unseen"}
        for group, langs in groups.items():
            assert sum(lp.n for lp in langs) == rec["metrics"]["groups"][group]["support"]
            recomputed = group_examples(task, names, langs).full()
            assert recomputed == pytest.approx(rec["metrics"]["groups"][group]["f1"], abs=1e-9)
    checksums = {tuple(lp.checksum for lp in decode_predictions(r)[2]["unseen"]) for r in records.values()}
    assert len(checksums) == 1  # every run is scored on the same test examples: runs pair up
    teacher = next(r for r in records.values() if r["spec"]["kind"] == "teacher")
    assert Path(teacher["model_dir"], "config.json").is_file()  # kept: students share it
    kd = [r for r in records.values() if r["spec"]["kind"] == "student" and r["spec"]["kd"]]
    assert any("loss_hid" in entry or "loss_att" in entry for entry in kd[0]["log_history"])
    student_dirs = [p for p in (tiny["reference"] / "runs").iterdir() if p.name.startswith("student-")]
    assert student_dirs == []  # students are not kept by default
    # a second run does nothing
    again = run_grid(parse_config(tiny["config"]), tiny["reference"])
    assert again.finished == [] and again.skipped == 6


def _run_cli(path: Path, work: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "polydistill", "grid", "run", str(path), "--work-dir", str(work), "--no-report"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 300) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:  # finished before the kill point: it must have succeeded
            assert proc.returncode == 0, proc.stderr.read().decode()[-3000:]
            return False
        if condition():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("kill point never reached")


def test_sigkill_at_several_points_then_resume_gives_the_same_table(tiny):
    work = tiny["tmp"] / "killed"
    results = work / "results"

    def n_results() -> int:
        return len(list(results.glob("*.json"))) if results.is_dir() else 0

    def checkpoint_of(prefix: str):
        return lambda: any((work / "runs").glob(f"{prefix}*/model.work/checkpoints/checkpoint-*"))

    kill_points = [
        checkpoint_of("teacher-"),  # mid teacher training, after its first checkpoint
        lambda: n_results() >= 2,  # between runs
        checkpoint_of("student-"),  # mid student training
    ]
    killed = 0
    for condition in kill_points:
        killed += _kill_when(_run_cli(tiny["path"], work), condition)
        # nothing half written in the store
        for path in results.glob("*.json"):
            json.loads(path.read_text())
    assert killed >= 2
    final = _run_cli(tiny["path"], work)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]

    ref_ids = sorted(p.name for p in (tiny["reference"] / "results").glob("*.json"))
    got_ids = sorted(p.name for p in results.glob("*.json"))
    assert got_ids == ref_ids  # none lost, none duplicated
    ref_table = write_report(tiny["reference"])["csv"].read_text()
    got_table = write_report(work)["csv"].read_text()
    assert got_table == ref_table


def test_half_width_dimensions_run_end_to_end(tmp_path):
    """The grid dimensions of the half-width study: importance selection, a named objective (relation
    KD), teacher-labelled augmentation and two-stage shrinking, each a real cell."""
    config = grid_dict(tmp_path)
    more = tmp_path / "more.txt"
    more.write_text("\n".join(CORPUS), encoding="utf-8")
    config["copy_without_finetune"] = False
    config["keep_student_models"] = True  # to read each stage's run.json
    config["students"] = {"inits": ["from-teacher"], "kd": [True], "layers": [2], "hidden": [16],
                          "intermediate": [32], "width_select": ["importance"],
                          "objectives": {"rel": {"att": 0.0, "hid": 0.0, "emb": 0.0, "rel": 1.0}},
                          "unlabelled": [None, f"fr={more}"], "unlabelled_max": 3, "stages": [1, 2]}
    config["student_training"] = {**config["student_training"], "epochs": 1}
    specs = expand(parse_config(config))
    students = [s for s in specs if s.kind == "student"]
    assert len(students) == 4 and {s.stages for s in students} == {1, 2}
    assert all(s.objective == "rel" and s.kd_settings.weights["rel"] == 1.0 for s in students)
    summary = run_grid(parse_config(config), tmp_path / "work")
    assert len(summary.finished) == 5
    records = {r["run_id"]: r for r in ResultStore(tmp_path / "work").records()}
    for spec in students:
        rec = records[spec.run_id]
        assert rec["spec"]["width_select"] == "importance" and rec["best_dev_f1"] is not None
        assert any("loss_rel" in entry for entry in rec["log_history"])
        # the cap reaches every KD stage of an augmented cell, and only augmented cells carry it
        assert spec.unlabelled_max == (3 if spec.unlabelled else None)
        model = ResultStore(tmp_path / "work").run_dir(spec.run_id) / "model"
        stage_dirs = [model, model.with_name("model.stages") / "depth"] if spec.stages == 2 else [model]
        for stage_dir in stage_dirs:
            run = json.loads((stage_dir / "run.json").read_text())
            assert run["data"]["unlabelled"] == (3 if spec.unlabelled else 0)
    table = Path(write_report(tmp_path / "work")["markdown"]).read_text()
    assert "unlabelled" in table and "stages" in table  # the varying dimensions are row labels

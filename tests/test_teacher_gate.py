"""The teacher gate: a teacher that learned nothing stops a grid before any student is built, and
``distill`` refuses it unless asked; a teacher that learned passes."""

from __future__ import annotations

import pytest
import yaml

from polydistill.cli import main
from polydistill.data.types import TaskData
from polydistill.evaluate.gate import dev_baselines, weak_teacher_reason
from test_distill_tasks import tiny_task
from test_experiments_resume import grid_dict


def test_gate_compares_dev_f1_with_the_better_baseline():
    data: TaskData = tiny_task("sequence", n_train=30, n_dev=30)
    majority = dev_baselines(data)["majority"]  # 3 balanced classes: macro-F1 of one class = 1/6
    assert majority == pytest.approx(1 / 6, abs=0.01)
    assert "does not beat the majority baseline" in weak_teacher_reason(majority + 0.01, data)
    assert weak_teacher_reason(majority + 0.2, data) is None
    assert weak_teacher_reason(majority + 0.01, data, margin=0.0) is None
    ner = tiny_task("token", n_train=20, n_dev=20)
    assert set(dev_baselines(ner)) == {"random"}


def test_degenerate_teacher_stops_the_grid_and_no_student_is_built(tmp_path, capsys):
    config = {**grid_dict(tmp_path), "teacher_gate_margin": 0.05}
    # a learning rate too small to move anything: the teacher stays at chance
    config["teacher_training"] = {**config["teacher_training"], "learning_rate": 1e-12, "epochs": 1,
                                 "head_init": "random"}  # (a probe alone would already learn)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    work = tmp_path / "work"
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "run", str(path), "--work-dir", str(work), "--no-report"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "too weak to distil from" in err and "baseline" in err and "teacher tiny/tsm" in err
    runs = work / "runs"
    assert not [p for p in runs.iterdir() if p.name.startswith("student-")]  # nothing distilled
    assert not list((work / "results").glob("*.json")) if (work / "results").is_dir() else True

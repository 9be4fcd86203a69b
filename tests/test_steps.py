"""The one resumable step (``polydistill.steps``): done exactly when its marker records this fingerprint and its
outputs are intact; a truncated or deleted output is noticed; a marker of other settings names what differs;
markers written before the step model (no digests) stay done."""

from __future__ import annotations

import json

import pytest

from polydistill.errors import PolydistillError
from polydistill.steps import MARKER, Step, StepOutputGone, differences


def _model(folder, weights=b"w" * 64):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _step(tmp_path, **settings):
    folder = tmp_path / "stages" / "1-build"
    return Step(name="build", folder=folder, settings={"seed": 0, **settings}, outputs=(folder / "model",),
                extra={"index": 1})


def test_a_finished_step_is_done_and_its_marker_records_settings_summary_seconds_and_digests(tmp_path):
    step = _step(tmp_path)
    assert step.done() is None
    _model(step.folder / "model")
    record = step.finish({"rows": 3}, 1.234)
    marker = json.loads((step.folder / MARKER).read_text())
    assert list(marker) == ["stage", "index", "seconds", "finished", "settings", "summary", "weight_files"]
    assert marker["seconds"] == 1.23 and marker["settings"] == {"seed": 0} and marker["summary"] == {"rows": 3}
    assert set(marker["weight_files"]) == {"model/model.safetensors"}
    assert step.done() == record == marker


def test_a_truncated_or_deleted_output_is_not_done(tmp_path):
    step = _step(tmp_path)
    weights = _model(step.folder / "model") / "model.safetensors"
    step.finish({}, 0.0)
    weights.write_bytes(b"w" * 10)  # truncated
    with pytest.raises(StepOutputGone, match="changed since") as gone:
        step.done()
    assert gone.value.path == weights
    weights.unlink()
    with pytest.raises(StepOutputGone, match="deleted since"):
        step.done()


def test_a_marker_of_other_settings_names_what_differs(tmp_path):
    _model(_step(tmp_path).folder / "model")
    _step(tmp_path, layers=2).finish({}, 0.0)
    with pytest.raises(PolydistillError, match=r"build step of other settings \(it differs in layers\)"):
        _step(tmp_path, layers=3).done()
    assert differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0}) == ["a.c", "d"]


def test_old_markers_without_digests_and_settings_added_since_at_their_default_stay_done(tmp_path):
    step = _step(tmp_path)
    _model(step.folder / "model")
    old = {"stage": "build", "index": 1, "seconds": 1.0, "finished": "2026-01-01T00:00:00+00:00",
           "settings": {"seed": 0}, "summary": {}}  # before weight digests and before the setting "knob"
    step.folder.mkdir(parents=True, exist_ok=True)
    (step.folder / MARKER).write_text(json.dumps(old), encoding="utf-8")
    assert step.done() == old

    def rule(values):  # the fingerprint rule: "knob" at its default identifies nothing
        return {k: v for k, v in values.items() if not (k == "knob" and v is None)}

    newer = Step(name="build", folder=step.folder, settings={"seed": 0, "knob": None}, outputs=step.outputs,
                 identify=rule)
    assert newer.done() == old
    changed = Step(name="build", folder=step.folder, settings={"seed": 0, "knob": 5}, outputs=step.outputs,
                   identify=rule)
    with pytest.raises(PolydistillError, match="differs in knob"):
        changed.done()


def test_a_record_output_is_read_back_through_its_schema(tmp_path):
    from typing_extensions import TypedDict

    class Rows(TypedDict):
        rows: list[int]

    folder = tmp_path / "evaluate"
    record = folder / "rows.json"
    step = Step(name="evaluate", folder=folder, settings={}, records=((record, Rows),))
    folder.mkdir()
    record.write_text('{"rows": [1]}', encoding="utf-8")
    step.finish({}, 0.0)
    assert "weight_files" not in step.done()
    record.write_text('{"rows": "x"}', encoding="utf-8")
    with pytest.raises(PolydistillError, match="rows.json is not a polydistill record"):
        step.done()
    record.unlink()
    with pytest.raises(StepOutputGone, match="deleted since"):
        step.done()


# ---------------------------------------------------------------- steps whose marker has a format of its own


def _result(run_id):
    return {"spec": {"kind": "teacher", "teacher": "t", "dataset": "d", "seed": 0, "train_languages": "all"},
            "label": "teacher t/d seed 0", "metrics": {"groups": {"all": {"f1": 0.5}}}, "wall_seconds": 1.5}


def test_a_grid_cell_is_a_step_whose_marker_is_its_result_file_written_as_before(tmp_path):
    from polydistill.experiments.store import ResultStore
    from polydistill.io import atomic_write_json

    store = ResultStore(tmp_path)
    assert not store.has("teacher-abc")
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "teacher-abc.json").write_text("{}", encoding="utf-8")
    path = store.save("teacher-abc", _result("teacher-abc"))
    assert path == store.result_path("teacher-abc") and store.has("teacher-abc")
    assert not (tmp_path / "failed" / "teacher-abc.json").exists()
    # the result file is byte for byte what the store wrote before cells were steps
    before = atomic_write_json(tmp_path / "before.json", {"run_id": "teacher-abc", **_result("teacher-abc")})
    assert path.read_bytes() == before.read_bytes()
    assert store.cell_step("teacher-abc").done() == json.loads(path.read_text())
    # a result filed under another run's id is not that run's: one sentence, not a skipped cell
    store.result_path("teacher-def").write_bytes(path.read_bytes())
    with pytest.raises(PolydistillError, match=r"teacher-def.json holds a grid cell step of other settings "
                                               r"\(it differs in run_id\); delete it to run the cell again"):
        store.has("teacher-def")
    # a result hand-edited into another shape: one sentence naming the file and the field
    path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": 3}), encoding="utf-8")
    with pytest.raises(PolydistillError, match="teacher-abc.json is not a polydistill record .*metrics"):
        store.has("teacher-abc")


def test_a_cells_training_and_build_are_steps_done_only_with_their_model(tmp_path):
    from polydistill.experiments.runner import build_step, train_step

    run_dir = tmp_path / "runs" / "student-abc"
    step = train_step(run_dir)
    assert step.done() is None
    run_dir.mkdir(parents=True)
    record = step.write({"best_dev_f1": 0.5, "loss_curve": []})
    assert json.loads((run_dir / "train_result.json").read_text()) == record == {"best_dev_f1": 0.5, "loss_curve": []}
    with pytest.raises(StepOutputGone):  # the record without its model: the cell trains again
        step.done()
    _model(run_dir / "model")
    assert step.done() == record
    build = build_step(run_dir / "init")
    _model(run_dir / "init")
    assert build.done() is None  # no provenance: a directory the atomic writer did not finish
    (run_dir / "init" / "polydistill.json").write_text('{"stage": "student"}', encoding="utf-8")
    assert build.done() == {"stage": "student"}


def test_a_training_run_is_a_step_whose_marker_is_its_run_json(tmp_path):
    from polydistill.distill.run import finished_result, run_step

    out = _model(tmp_path / "run")
    fingerprint = {"stage": "finetune", "settings": {"seed": 0}}
    step = run_step(out, "finetune", fingerprint)
    assert step.done() is None and finished_result(out, fingerprint) is None
    (out / "run.json").write_text(json.dumps({"stage": "finetune", "fingerprint": fingerprint,
                                              "result": {"best_dev_f1": 0.5}, "weight_files": step.digests()}))
    done = finished_result(out, fingerprint, "finetune")
    assert done is not None and done.already_done and done.best_dev_f1 == 0.5
    # another run's output is not this run's: the output preflight decides (refuse, or --overwrite)
    assert finished_result(out, {**fingerprint, "settings": {"seed": 1}}) is None
    (out / "model.safetensors").write_bytes(b"x")
    with pytest.raises(PolydistillError, match=r"model\.safetensors\) changed since it finished; .*--overwrite"):
        finished_result(out, fingerprint)
    assert finished_result(out, fingerprint, overwrite=True) is None  # --overwrite trains it again

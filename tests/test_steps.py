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

"""``--report-to``: the training commands log to transformers' tracker integrations (TensorBoard into the
run's own folder); a tracker whose package is missing or an unknown name is one sentence before any work."""

from __future__ import annotations

import importlib.util

import pytest

from factories import make_model_dir
from test_bad_inputs import FAST, _write_csv_dataset, check_one_sentence, run_cli
from test_distill_tasks import tiny_task


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trackers")
    return make_model_dir(root, "bert", "base", name="base"), _write_csv_dataset(root / "data",
                                                                                tiny_task("sequence", 32, 16))


def test_report_to_tensorboard_writes_event_files_into_the_run(inputs, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    model, data = inputs
    out = tmp_path / "ft"
    code, _, err = run_cli(["finetune", model, "--dataset", data, "--out", out, *FAST, "--report-to", "tensorboard"],
                           capsys)
    assert code == 0, err
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


@pytest.mark.parametrize("tracker", ["wandb", "mlflow", "trackio"])
def test_a_tracker_without_its_package_is_one_sentence(inputs, tmp_path, capsys, tracker):
    if importlib.util.find_spec(tracker) is not None:
        pytest.skip(f"{tracker} is installed here")
    model, data = inputs
    out = tmp_path / "ft"
    code, _, err = run_cli(["finetune", model, "--dataset", data, "--out", out, *FAST, "--report-to", tracker], capsys)
    assert code == 2 and f"needs the {tracker} package" in check_one_sentence(err)
    assert not out.exists()


@pytest.mark.parametrize("value, needle", [("bogus", "unknown tracker 'bogus'"),
                                           ("none,tensorboard", "'none' cannot be combined")])
def test_a_bad_report_to_is_one_sentence(inputs, tmp_path, capsys, value, needle):
    model, data = inputs
    code, _, err = run_cli(["finetune", model, "--dataset", data, "--out", tmp_path / "ft", *FAST, "--report-to", value],
                           capsys)
    assert code == 2 and needle in check_one_sentence(err) and "--report-to" in err

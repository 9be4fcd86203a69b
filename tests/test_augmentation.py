"""Teacher-labelled augmentation: unlabelled inputs (other languages' train inputs, or a file) join the
KD training set with IGNORE_INDEX labels, so they count in the teacher-matching terms and never in CE;
for NER every word's first sub-word is scored, labelled or not."""

from __future__ import annotations

import json

import pytest
import torch

from polydistill.data.tokenize import KD_POSITIONS, data_collator, tokenize_task_data
from polydistill.data.types import IGNORE_INDEX
from polydistill.data.unlabelled import load_unlabelled
from polydistill.distill import losses
from polydistill.distill.kd import distill
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import PolydistillError
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task


def test_unlabelled_from_a_file_and_refusals(tmp_path):
    text = tmp_path / "more.txt"
    text.write_text("play some jazz\n\nwhat is the weather\n", encoding="utf-8")
    seq = load_unlabelled(f"fr={text}", "sequence")
    assert seq["text"] == ["play some jazz", "what is the weather"] and set(seq["label"]) == {IGNORE_INDEX}
    assert set(seq["language"]) == {"fr"}
    tok = load_unlabelled(str(text), "token")
    assert tok["tokens"][0] == ["play", "some", "jazz"] and tok["tags"][0] == [IGNORE_INDEX] * 3
    with pytest.raises(PolydistillError, match="neither a file"):
        load_unlabelled("no-such-thing", "sequence")


def test_collator_scores_every_first_subword():
    data = tiny_task("token", n_train=4, n_dev=2)
    _, tokenizer = tiny_model(data)
    train = tokenize_task_data(data, tokenizer, max_length=32)["train"]
    batch = data_collator("token", tokenizer, word_positions=True)([train[0], train[1]])
    assert torch.equal(batch[KD_POSITIONS].bool(), batch["labels"] != IGNORE_INDEX)  # labelled: the same
    assert "word_ids" not in batch


def test_unlabelled_rows_never_count_in_ce():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, IGNORE_INDEX, 2, IGNORE_INDEX])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]])
    assert losses.classification_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.classification_loss(logits, torch.full((4,), IGNORE_INDEX)).item() == 0.0


@pytest.mark.parametrize("task", ["sequence", "token"])
def test_kd_with_unlabelled_inputs(tmp_path, task):
    data = tiny_task(task, n_train=16, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    built = build_student(teacher, layers=2, tokenizer=tokenizer)
    more = tmp_path / "more.txt"
    more.write_text("\n".join(["hallo welt das ist", "play some jazz in paris", "bonjour le monde"] * 4),
                    encoding="utf-8")
    unlabelled = load_unlabelled(f"xx={more}", task)
    settings = TrainSettings(output_dir=tmp_path / "kd", max_steps=3, eval_steps=3, batch_size=8, logging_steps=1)
    result = distill(teacher, built, data, settings, KDSettings(allow_untrained_teacher=True, teacher_cache=False),
                     tokenizer=tokenizer, unlabelled=unlabelled)
    run = json.loads((result.output_dir / "run.json").read_text())
    assert run["data"]["unlabelled"] == 12 and run["data"]["train"] == 28
    assert "xx" not in run["data"]["languages"]  # unlabelled-only languages are not "seen"
    assert all(h["loss_pred"] >= 0 for h in result.log_history if "loss_pred" in h)


def test_two_stage_shrinking_selects_width_on_the_depth_student(tmp_path):
    from polydistill.distill.finetune import finetune
    from polydistill.distill.stages import distill_in_stages
    from polydistill.student.provenance import read_provenance

    data = tiny_task("sequence", n_train=24, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    trained = finetune(teacher, data, TrainSettings(output_dir=tmp_path / "t", max_steps=2, eval_steps=2, batch_size=8),
                       tokenizer=tokenizer)
    settings = TrainSettings(output_dir=tmp_path / "kd", max_steps=4, eval_steps=2, batch_size=8)
    result = distill_in_stages(trained.output_dir, data, settings, KDSettings(allow_weak_teacher=True),
                               layers=2, hidden=16, intermediate=32)
    depth = tmp_path / "kd.stages" / "depth"
    assert read_provenance(depth).width["hidden_size"] == 32  # full width first
    final = read_provenance(result.output_dir)
    assert final.width["hidden_size"] == 16 and final.width["method"] == "importance"
    assert final.teacher == str(depth)  # width chosen on the depth student
    run = json.loads((result.output_dir / "run.json").read_text())
    assert run["layer_map"] == read_provenance(depth).teacher_layers and run["result"]["global_step"] == 2


def test_two_stage_honours_uniform_selection_and_augments_both_stages(tmp_path):
    from polydistill.distill.finetune import finetune
    from polydistill.distill.stages import distill_in_stages
    from polydistill.student.provenance import read_provenance

    data = tiny_task("sequence", n_train=24, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    trained = finetune(teacher, data, TrainSettings(output_dir=tmp_path / "t", max_steps=2, eval_steps=2, batch_size=8),
                       tokenizer=tokenizer)
    more = tmp_path / "more.txt"
    more.write_text("\n".join(["hallo welt das ist", "play some jazz in paris"] * 3), encoding="utf-8")
    settings = TrainSettings(output_dir=tmp_path / "kd", max_steps=4, eval_steps=2, batch_size=8)
    result = distill_in_stages(trained.output_dir, data, settings, KDSettings(allow_weak_teacher=True),
                               layers=2, hidden=16, intermediate=32, width_select="uniform",
                               unlabelled=load_unlabelled(f"xx={more}", "sequence"))
    assert read_provenance(result.output_dir).width["method"] == "uniform"
    assert result.extra["stages"]["width"]["plan"] == "uniform"
    for stage_dir in (tmp_path / "kd.stages" / "depth", result.output_dir):
        run = json.loads((stage_dir / "run.json").read_text())
        assert run["data"]["unlabelled"] == 6 and run["data"]["train"] == 30


def test_cli_two_stages_with_unlabelled_data(tmp_path):
    from typer.testing import CliRunner

    from polydistill.cli import app
    from polydistill.data.load import load_task_data
    from polydistill.distill.finetune import finetune
    from test_bad_inputs import _write_csv_dataset

    folder = _write_csv_dataset(tmp_path / "data", tiny_task("sequence", n_train=24, n_dev=8))
    data = load_task_data(str(folder))  # the label order the CLI will see
    teacher, tokenizer = tiny_model(data)
    trained = finetune(teacher, data, TrainSettings(output_dir=tmp_path / "t", max_steps=2, eval_steps=2, batch_size=8),
                       tokenizer=tokenizer)
    more = tmp_path / "more.txt"
    more.write_text("\n".join(["hallo welt das ist", "play some jazz in paris"] * 2), encoding="utf-8")
    out = tmp_path / "kd"
    result = CliRunner().invoke(app, [
        "distill", "--teacher", str(trained.output_dir), "--dataset", str(folder),
        "--out", str(out), "--stages", "depth,width", "--layers", "2", "--hidden", "16", "--intermediate", "32",
        "--unlabelled-data", f"xx={more}", "--max-steps", "4", "--eval-steps", "2", "--batch-size", "8",
        "--allow-weak-teacher"])
    assert result.exit_code == 0, result.output
    for stage_dir in (out.with_name("kd.stages") / "depth", out):
        assert json.loads((stage_dir / "run.json").read_text())["data"]["unlabelled"] == 4

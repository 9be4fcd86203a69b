"""Fine-tuning: best-by-dev-F1 HF directory with labels, frozen embeddings, resume, refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from factories import make_model_dir
from polydistill.distill.finetune import finetune
from polydistill.distill.settings import TrainSettings
from polydistill.errors import PolydistillError
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task


@pytest.fixture(scope="module")
def data():
    return tiny_task("sequence", n_train=32, n_dev=16)


def _settings(out, **kw):
    base = dict(output_dir=out, max_steps=4, learning_rate=5e-3, batch_size=8, eval_steps=2, logging_steps=2)
    return TrainSettings(**{**base, **kw})


def test_finetune_base_checkpoint_saves_best_model_with_labels_and_frozen_embeddings(tmp_path, data):
    base_dir = make_model_dir(tmp_path, "bert", "base")  # no task head: one is added for data's labels
    original = load_file(str(base_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    result = finetune(base_dir, data, _settings(tmp_path / "ft", freeze_word_embeddings=True))
    out = result.output_dir
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert list(config["id2label"].values()) == data.label_names
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(saved["bert.embeddings.word_embeddings.weight"], original)  # frozen
    evals = [h["eval_f1"] for h in result.log_history if "eval_f1" in h]
    assert len(evals) >= 2 and result.best_dev_f1 == pytest.approx(max(evals))  # best checkpoint kept
    run = json.loads((out / "run.json").read_text())
    assert run["stage"] == "finetune" and run["labels"] == data.label_names
    assert not (tmp_path / "ft.work").exists()
    with pytest.raises(PolydistillError, match="already exists"):
        finetune(base_dir, data, _settings(tmp_path / "ft"))


def test_resume_after_interruption(tmp_path, data, monkeypatch):
    model_dir = make_model_dir(tmp_path, "bert", "base")
    original_step = Trainer.training_step
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after checkpoint-2 was written
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune(model_dir, data, _settings(tmp_path / "ft"))
    assert (tmp_path / "ft.work" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (tmp_path / "ft").exists()
    # a kill during a later save leaves a newer checkpoint without trainer_state.json behind
    half_written = tmp_path / "ft.work" / "checkpoints" / "checkpoint-3"
    half_written.mkdir()
    (half_written / "model.safetensors").write_bytes(b"truncated")
    monkeypatch.setattr(Trainer, "training_step", original_step)
    result = finetune(model_dir, data, _settings(tmp_path / "ft"))
    assert result.resumed_from.endswith("checkpoint-2") and result.global_step == 4


def test_freezing_embeddings_of_from_scratch_student_is_refused(tmp_path, data):
    teacher, tokenizer = tiny_model(data)
    scratch = build_student(teacher, layers=2, init="from-scratch", tokenizer=tokenizer)
    with pytest.raises(PolydistillError, match="from-scratch"):
        finetune(scratch, data, _settings(tmp_path / "ft", freeze_word_embeddings=True))


def test_head_with_other_labels_is_refused(tmp_path, data):
    other = make_model_dir(tmp_path, "bert", "sequence")  # head labelled LABEL_A, LABEL_B, LABEL_C
    with pytest.raises(PolydistillError, match="labels"):
        finetune(other, data, _settings(tmp_path / "ft"))

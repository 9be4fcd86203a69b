"""Refusals: vocabulary mismatch, label-set mismatch, untrained teacher (and its heuristic)."""

from __future__ import annotations

import pytest
import torch

from factories import make_model, make_model_dir, make_unigram_tokenizer, make_wordpiece_tokenizer
from polydistill.distill import checks
from polydistill.distill.kd import distill
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import PolydistillError
from test_distill_tasks import tiny_model, tiny_task


def test_vocabulary_mismatch_is_refused():
    tokenizer = make_wordpiece_tokenizer()
    checks.check_vocabularies(tokenizer, tokenizer)
    with pytest.raises(PolydistillError, match="tokenizers differ"):
        checks.check_vocabularies(make_wordpiece_tokenizer(), make_unigram_tokenizer())


def test_label_set_mismatch_is_refused_and_default_names_accepted():
    model, _ = make_model("bert", "sequence", num_labels=3)  # labels LABEL_A, LABEL_B, LABEL_C
    with pytest.raises(PolydistillError, match="labels"):
        checks.check_labels(model.config, ["neg", "neu", "pos"])
    model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    checks.check_labels(model.config, ["neg", "neu", "pos"])  # unnamed head of the right size
    with pytest.raises(PolydistillError):
        checks.check_labels(model.config, ["neg", "pos"])


def test_untrained_heuristic(tmp_path):
    fresh, _ = make_model("bert", "sequence")
    assert "initial statistics" in checks.untrained_reason(fresh)
    with torch.no_grad():  # what one optimiser step does to a head: the bias leaves zero
        checks.classifier_output_layer(fresh).bias.add_(0.01)
    assert checks.untrained_reason(fresh) is None
    base, _ = make_model("bert", "base")
    assert "no classification head" in checks.untrained_reason(base)
    untouched, _ = make_model("xlm-roberta", "sequence")  # classifier.out_proj is found too
    assert checks.untrained_reason(untouched) is not None
    (tmp_path / "run.json").write_text("{}")  # a fine-tuning record wins over the statistics
    assert checks.untrained_reason(untouched, tmp_path) is None


def test_distill_refuses_untrained_teacher_then_vocab_and_label_mismatch(tmp_path):
    data = tiny_task("sequence", n_train=8, n_dev=4)
    teacher, tokenizer = tiny_model(data)
    teacher_dir = tmp_path / "teacher"
    teacher.save_pretrained(teacher_dir)
    tokenizer.save_pretrained(teacher_dir)
    settings = TrainSettings(output_dir=tmp_path / "out", max_steps=1)
    with pytest.raises(PolydistillError, match="untrained.*--allow-untrained-teacher"):
        distill(teacher_dir, teacher_dir, data, settings)
    allow = KDSettings(allow_untrained_teacher=True)
    other_vocab = make_model_dir(tmp_path, "xlm-roberta", "base")  # unigram tokenizer, no head
    with pytest.raises(PolydistillError, match="tokenizers differ"):
        distill(teacher_dir, other_vocab, data, settings, allow)
    other_labels = tiny_task("token", n_train=8, n_dev=4)
    with pytest.raises(PolydistillError, match="token task"):
        distill(teacher_dir, teacher_dir, other_labels, settings, allow)
    renamed = tiny_task("sequence", n_train=8, n_dev=4)
    renamed.label_names = ["a", "b", "c"]
    with pytest.raises(PolydistillError, match="labels"):
        distill(teacher_dir, teacher_dir, renamed, settings, allow)
    assert not (tmp_path / "out").exists()

"""The KD objective is a registry of terms: a term registered from outside the package trains end to
end (library and CLI), is logged like the built-in ones, and bad weights are refused in one sentence."""

from __future__ import annotations

import json

import pytest

from polydistill.cli import main
from polydistill.distill.kd import distill
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.distill.terms import get_term, register_term, term_names
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task

CALLS = {"n": 0}


@register_term("toy_l1", needs={"teacher_logits"}, replace=True)
def toy_l1(batch, kd):
    """L1 distance of student and teacher logits (a toy term registered by a user)."""
    CALLS["n"] += 1
    return (batch.student_logits - batch.teacher_logits).abs().mean()


def test_builtin_terms_are_registry_entries():
    assert {"att", "hid", "emb", "pred", "ce", "cos", "last_mse"} <= set(term_names())
    assert get_term("att").needs == {"attention"} and get_term("ce").needs == frozenset()
    with pytest.raises(ValueError, match="already registered"):
        register_term("att")(toy_l1)
    with pytest.raises(ValueError, match="unknown needs"):
        register_term("bad_needs", needs={"telepathy"})


def test_a_term_registered_outside_the_package_trains_end_to_end(tmp_path):
    data = tiny_task("sequence", n_train=32, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    teacher.classifier.weight.data *= 50  # large teacher logits: far from a random student's
    built = build_student(teacher, layers=2, init="from-scratch", tokenizer=tokenizer)
    kd = KDSettings(att=0, hid=0, emb=0, pred=0, ce=0, toy_l1=1.0, allow_untrained_teacher=True,
                    allow_weak_teacher=True, teacher_cache=False)
    assert kd.active == {"toy_l1": 1.0}
    CALLS["n"] = 0
    settings = TrainSettings(output_dir=tmp_path / "kd", max_steps=3, eval_steps=3, logging_steps=1,
                             learning_rate=3e-3, batch_size=8)
    result = distill(teacher, built, data, settings, kd, tokenizer=tokenizer)
    assert CALLS["n"] == 3  # one call per training step
    losses = [h["loss_toy_l1"] for h in result.log_history if "loss_toy_l1" in h]
    assert len(losses) == 3 and losses[-1] < losses[0]  # it is the objective: it goes down
    assert not any("loss_att" in h for h in result.log_history)  # switched-off terms are not computed
    run = json.loads((result.output_dir / "run.json").read_text())
    assert run["kd"]["weights"]["toy_l1"] == 1.0


def test_cli_trains_with_a_registered_term(tmp_path, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rows = ["text,label", *[f"{'jazz music' if i % 2 else 'rainy weather'} number {i},{i % 2}" for i in range(24)]]
    for split in ("train", "validation", "test"):
        (data_dir / f"{split}.csv").write_text("\n".join(rows) + "\n")
    from factories import make_model_dir

    teacher = make_model_dir(tmp_path, "bert", "sequence", num_labels=2)
    config = json.loads((teacher / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "0", "1": "1"}, {"0": 0, "1": 1}
    (teacher / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exit_:
        main(["distill", "--teacher", str(teacher), "--layers", "2", "--dataset", str(data_dir), "--out",
              str(tmp_path / "kd"), "--max-steps", "2", "--eval-steps", "2", "--batch-size", "8",
              "--w-att", "0", "--w-hid", "0", "--w-emb", "0", "--kd-term", "toy_l1=0.5",
              "--allow-untrained-teacher", "--allow-weak-teacher"])
    assert exit_.value.code == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "kd" / "run.json").read_text())
    assert run["kd"]["weights"]["toy_l1"] == 0.5


@pytest.mark.parametrize("weights, message", [
    ({"toy_l1": -1.0}, "finite number ≥ 0"),
    ({"toy_l1": float("nan")}, "finite number ≥ 0"),
    ({"nope": 1.0}, "unknown KD term"),
    ({"att": 0, "hid": 0, "emb": 0, "pred": 0, "ce": 0}, "every loss weight is 0"),
])
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        KDSettings(weights=weights)

"""The teacher-output cache: cached outputs equal the live teacher's (eval mode, no dropout), for
any batch composition and padding; a KD run with the cache gives the same student as without it;
a second run (or a resumed one) reuses the cache instead of running the teacher."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from polydistill.data.tokenize import data_collator, tokenize_task_data
from polydistill.distill.kd import distill
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.distill.teacher_cache import build_cache, estimate_bytes
from polydistill.distill.trainer import PolydistillTrainer, objective_of
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task


def _settings(out, **kw):
    base = dict(output_dir=out, max_steps=4, eval_steps=4, learning_rate=1e-3, batch_size=8, logging_steps=1)
    return TrainSettings(**{**base, **kw})


@pytest.mark.parametrize("task", ["sequence", "token"])
def test_cached_batches_equal_live_teacher_outputs(tmp_path, task):
    from transformers import TrainingArguments

    data = tiny_task(task, n_train=20, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    teacher.eval()
    student = build_student(teacher, layers=2, tokenizer=tokenizer).model
    train = tokenize_task_data(data, tokenizer, max_length=32)["train"]
    collator = data_collator(task, tokenizer)
    kd = KDSettings()
    trainer = PolydistillTrainer(model=student, args=TrainingArguments(output_dir=str(tmp_path), report_to="none",
                                                                       use_cpu=True),
                                 objective=objective_of(kd), kd=kd, teacher=teacher, layer_map=[1, 3])
    cache = build_cache(trainer._teacher_side, train, collator, batch_size=7, dtype="float32")
    # a batch composition the cache never saw (other neighbours, other padded length)
    rows = [3, 11, 0, 17]
    batch = collator([train[i] for i in rows])
    live = trainer._teacher_side({k: v for k, v in batch.items() if k != "labels"}, batch["attention_mask"])
    cached = cache.batch(torch.tensor(rows), batch["attention_mask"].shape[1], "cpu", torch.float32)
    mask = batch["attention_mask"].bool()
    assert set(cached) == set(live) == {"teacher_logits", "teacher_maps", "teacher_hidden", "teacher_embeddings"}
    pairs = mask[:, None, :, None] & mask[:, None, None, :]
    for name in live:
        for lv, cv in zip(*( (x if isinstance(x, list) else [x]) for x in (live[name], cached[name])), strict=True):
            if name == "teacher_maps":
                torch.testing.assert_close(cv[pairs.expand_as(cv)], lv[pairs.expand_as(lv)], atol=1e-5, rtol=1e-5)
            elif lv.dim() == 3 or (name == "teacher_logits" and task == "token"):
                torch.testing.assert_close(cv[mask], lv[mask], atol=1e-5, rtol=1e-5)
            else:
                torch.testing.assert_close(cv, lv, atol=1e-5, rtol=1e-5)
    trainer.release_models()
    spec = {"width": 32, "heads": 4, "num_labels": 3, "token_logits": task == "token", "hidden_layers": 2,
            "map_layers": 2, "embeddings": 1, "last_hidden": 0}
    stored = sum(t.numel() * t.element_size() for t in cache.tensors.values())
    assert estimate_bytes((len(ids) for ids in train["input_ids"]), spec, "float32") == stored


def test_kd_with_cache_gives_the_same_student_and_reuses_the_cache(tmp_path):
    data = tiny_task("sequence", n_train=32, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    built = lambda: build_student(teacher, layers=2, hidden=16, intermediate=32, tokenizer=tokenizer)  # noqa: E731
    common = dict(allow_untrained_teacher=True, allow_weak_teacher=True)
    live = distill(teacher, built(), data, _settings(tmp_path / "live"), KDSettings(teacher_cache=False, **common),
                   tokenizer=tokenizer)
    cached = distill(teacher, built(), data, _settings(tmp_path / "cached"),
                     KDSettings(teacher_cache_dtype="float32", **common), tokenizer=tokenizer)
    a = load_file(str(live.output_dir / "model.safetensors"))
    b = load_file(str(cached.output_dir / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=1e-4)
    record = json.loads((cached.output_dir / "run.json").read_text())["teacher_cache"]
    assert record["reused"] is False and record["bytes"] > 0
    again = distill(teacher, built(), data, _settings(tmp_path / "again", seed=1),
                    KDSettings(teacher_cache_dtype="float32", **common), tokenizer=tokenizer)
    assert json.loads((again.output_dir / "run.json").read_text())["teacher_cache"]["reused"] is True
    small = distill(teacher, built(), data, _settings(tmp_path / "small"),
                    KDSettings(teacher_cache_gb=1e-9, **common), tokenizer=tokenizer)
    assert "skipped" in json.loads((small.output_dir / "run.json").read_text())["teacher_cache"]


def test_a_cache_over_the_budget_is_skipped_with_a_warning_and_recorded_with_its_size(tmp_path, capsys):
    from polydistill.distill.teacher_cache import describe, over_budget

    data = tiny_task("sequence", n_train=16, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    student = build_student(teacher, layers=2, hidden=16, intermediate=32, tokenizer=tokenizer)
    result = distill(teacher, student, data, _settings(tmp_path / "small", max_steps=2, eval_steps=2),
                     KDSettings(teacher_cache_gb=1e-6, allow_untrained_teacher=True, allow_weak_teacher=True),
                     tokenizer=tokenizer)
    record = result.extra["teacher_cache"]  # what the run did, in its result and its run.json
    assert json.loads((result.output_dir / "run.json").read_text())["teacher_cache"] == record
    assert record["budget_bytes"] == 1000 and record["bytes"] > 1000
    assert record["skipped"].startswith("needs ") and record["skipped"].endswith("> 1e-06 GB budget (--teacher-cache-gb)")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {describe(record)}; every KD step runs the teacher (slower; a larger "
                        "--teacher-cache-gb builds it)."]
    assert over_budget(record["bytes"], record["bytes"] / 1e9) is None  # the budget is inclusive
    assert describe({"skipped": "x"}) == "teacher-output cache: skipped — x"
    assert describe({"reused": False, "bytes": 2_400_000_000, "seconds": 31.2}) == \
        "teacher-output cache: built (2.4 GB, 31 s)"
    assert describe({"reused": True, "bytes": 312_500_000}) == "teacher-output cache: reused (312.5 MB)"


def test_the_cache_folder_keeps_its_budget_least_recently_used_first(tmp_path, monkeypatch):
    import os

    from polydistill.distill.teacher_cache import KEEP_ENV, OUTPUTS_FILE, keep_bytes, prune
    from polydistill.errors import PolydistillError

    for age, name in enumerate(["new", "mid", "old"]):
        (tmp_path / name).mkdir()
        (tmp_path / name / OUTPUTS_FILE).write_bytes(b"x" * 100)
        os.utime(tmp_path / name / OUTPUTS_FILE, (1e9 - age * 100, 1e9 - age * 100))
    (tmp_path / "half-written").mkdir()  # no outputs file: not a cache, left alone
    (tmp_path / ".being-written.tmp").mkdir()  # another process's atomic write in progress: never touched
    (tmp_path / ".being-written.tmp" / OUTPUTS_FILE).write_bytes(b"x" * 100)
    os.utime(tmp_path / ".being-written.tmp" / OUTPUTS_FILE, (1, 1))
    # the oldest goes first, the one just used ("old", kept) never
    assert prune(tmp_path, 150, keep=tmp_path / "old") == [tmp_path / "mid", tmp_path / "new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".being-written.tmp", "half-written", "old"]
    assert prune(tmp_path, 1000, keep=tmp_path / "old") == []
    monkeypatch.setenv(KEEP_ENV, "0.5")
    assert keep_bytes() == 500_000_000
    monkeypatch.setenv(KEEP_ENV, "lots")
    with pytest.raises(PolydistillError, match="number of GB"):
        keep_bytes()

"""--precision: auto picks bf16 only where the hardware has it (simulated CPUs with and without the
flags), refusals are one sentence, and a bf16 run records its precision and trains (KD included,
the teacher under the same autocast)."""

from __future__ import annotations

import json

import pytest
import torch

from polydistill.distill import precision as precision_mod
from polydistill.distill.finetune import finetune
from polydistill.distill.kd import distill
from polydistill.distill.precision import resolve_precision
from polydistill.distill.settings import KDSettings, TrainSettings
from polydistill.errors import PolydistillError
from polydistill.student.build import build_student
from test_distill_tasks import tiny_model, tiny_task

BF16_CPU = frozenset({"avx512f", "avx512_bf16"})
AMX_CPU = frozenset({"amx_bf16", "amx_tile"})
OLD_CPU = frozenset({"avx2", "fma"})
NO_GPU, BF16_GPU, OLD_GPU = (False, False), (True, True), (True, False)


@pytest.mark.parametrize("requested, cuda, flags, expected", [
    ("auto", NO_GPU, BF16_CPU, "bf16"),
    ("auto", NO_GPU, AMX_CPU, "bf16"),
    ("auto", NO_GPU, OLD_CPU, "fp32"),
    ("auto", BF16_GPU, OLD_CPU, "bf16"),
    ("auto", OLD_GPU, BF16_CPU, "fp32"),  # on a GPU the GPU decides
    ("fp32", NO_GPU, BF16_CPU, "fp32"),
    ("bf16", NO_GPU, BF16_CPU, "bf16"),
    ("fp16", BF16_GPU, OLD_CPU, "fp16"),
])
def test_resolve_precision(requested, cuda, flags, expected):
    assert resolve_precision(requested, cuda=cuda, flags=flags).name == expected


@pytest.mark.parametrize("requested, cuda, flags, message", [
    ("fp16", NO_GPU, BF16_CPU, "needs a CUDA GPU"),
    ("bf16", NO_GPU, OLD_CPU, "no bf16 instructions"),
    ("bf16", OLD_GPU, OLD_CPU, "does not support bf16"),
])
def test_precision_refusals(requested, cuda, flags, message):
    with pytest.raises(PolydistillError, match=message):
        resolve_precision(requested, cuda=cuda, flags=flags)


def _settings(out, **kw):
    return TrainSettings(output_dir=out, max_steps=2, eval_steps=2, learning_rate=1e-3, batch_size=8,
                         logging_steps=1, **kw)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """This test process behaves like a CPU with bf16 instructions (tiny models run bf16 anywhere)."""
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: BF16_CPU)


def test_auto_on_a_cpu_without_bf16_trains_in_fp32(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_flags", lambda: OLD_CPU)
    data = tiny_task("sequence", n_train=16, n_dev=8)
    model, tokenizer = tiny_model(data)
    result = finetune(model, data, _settings(tmp_path / "ft", precision="auto"), tokenizer=tokenizer)
    assert json.loads((result.output_dir / "run.json").read_text())["precision"] == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a CPU-only machine")
def test_bf16_finetune_and_kd_record_their_precision_and_train(tmp_path, bf16_cpu):
    data = tiny_task("sequence", n_train=16, n_dev=8)
    teacher, tokenizer = tiny_model(data)
    result = finetune(teacher, data, _settings(tmp_path / "ft", precision="auto"), tokenizer=tokenizer)
    run = json.loads((result.output_dir / "run.json").read_text())
    assert run["precision"] == "bf16" and run["settings"]["precision"] == "auto"
    built = build_student(result.output_dir, layers=2, hidden=16, intermediate=32)
    kd = distill(result.output_dir, built, data, _settings(tmp_path / "kd", precision="bf16"),
                 KDSettings(allow_weak_teacher=True))
    logs = [h for h in kd.log_history if "loss_hid" in h]
    assert logs and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    saved = json.loads((kd.output_dir / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) in (None, "float32")  # weights stay fp32 (autocast only)

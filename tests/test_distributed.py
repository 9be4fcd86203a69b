"""Scale-out: finetune and distill under ``torchrun --nproc_per_node 2`` (CPU, gloo) behave like one
process that sees the global batch: one output with weights, one log without duplicated steps,
losses at a single process's scale, the width projection identical on both ranks, the teacher
untouched, exit 0."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from factories import make_model_dir
from test_distill_tasks import _sequence_rows

TORCHRUN = shutil.which("torchrun")
pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not on PATH")


def _dataset_dir(root: Path) -> Path:
    import random

    rng = random.Random(0)
    folder = root / "tiny-data"
    folder.mkdir()
    for split, n in (("train", 64), ("validation", 16), ("test", 16)):
        rows = _sequence_rows(n, rng)
        with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "language"])
            writer.writerows(zip(rows["text"], [["music", "weather", "greeting"][y] for y in rows["label"]],
                                 rows["language"], strict=True))
    (folder / "labels.txt").write_text("music\nweather\ngreeting\n", encoding="utf-8")
    return folder


def _run(argv: list[str], nproc: int, tmp: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           **(extra_env or {})}
    if nproc == 1:
        cmd = [sys.executable, "-m", "polydistill", *argv]
    else:
        cmd = [TORCHRUN, "--nproc_per_node", str(nproc), "--master_port", str(29500 + os.getpid() % 1000),
               "-m", "polydistill", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    return root, _dataset_dir(root), make_model_dir(root, "bert", "base")


@pytest.fixture(scope="module")
def finetuned(setup):
    """The same fine-tune run by two processes (8 examples each) and by one (16): the same global batch.
    Returns (two-process out, its CompletedProcess, one-process out)."""
    root, data, model = setup
    # a random head starts at ln 3 on three classes: the scale the losses are compared against
    common = ["finetune", str(model), "--dataset", str(data), "--max-steps", "4", "--eval-steps", "2",
              "--logging-steps", "1", "--lr", "1e-3", "--threads", "1", "--head-init", "random"]
    two = root / "ft2"
    result = _run([*common, "--batch-size", "8", "--out", str(two)], 2, root)
    assert result.returncode == 0, result.stderr[-3000:]
    one = root / "ft1"
    single = _run([*common, "--batch-size", "16", "--out", str(one)], 1, root)
    assert single.returncode == 0, single.stderr[-3000:]
    return two, result, one


def test_finetune_under_torchrun_distributes_and_writes_once(setup, finetuned):
    root = setup[0]
    two, result, one = finetuned
    assert (two / "model.safetensors").is_file() and (two / "config.json").is_file()
    assert not (root / "ft2.work").exists()
    assert result.stdout.count("model saved") == 1  # only the main process prints
    train_steps = [e["step"] for e in _log(two) if "loss" in e]
    assert train_steps == sorted(set(train_steps)) == [1, 2, 3, 4]  # one line per step, no duplicates
    run = json.loads((two / "run.json").read_text())
    assert run["result"]["global_step"] == 4
    first_two = [e["loss"] for e in _log(two) if "loss" in e][0]
    first_one = [e["loss"] for e in _log(one) if "loss" in e][0]
    assert first_two == pytest.approx(first_one, rel=0.15)  # same scale (ln 3 ≈ 1.1), not doubled
    assert first_one == pytest.approx(math.log(3), rel=0.2)


def test_eval_loss_under_torchrun_is_the_mean_over_ranks(finetuned):
    """Each rank evaluates half of the 16 dev rows; eval_loss is their mean, not their sum (it was
    2.197 = 2 × ln 3 under two processes, the Trainer scaling the loss by the world size)."""
    two, _, one = finetuned
    evals = {name: {e["step"]: e["eval_loss"] for e in _log(out) if "eval_loss" in e}
             for name, out in (("two", two), ("one", one))}
    assert sorted(evals["two"]) == sorted(evals["one"]) == [2, 4]
    for step in (2, 4):
        assert evals["two"][step] == pytest.approx(evals["one"][step], rel=1e-3, abs=1e-4)
    assert evals["one"][2] == pytest.approx(math.log(3), rel=0.05)  # a 3-class model that has barely trained


def test_half_width_distill_under_torchrun_keeps_projection_in_sync(setup):
    root, data, model = setup
    teacher = root / "teacher"
    trained = _run(["finetune", str(model), "--dataset", str(data), "--max-steps", "2", "--eval-steps", "2",
                    "--batch-size", "8", "--lr", "1e-3", "--threads", "1", "--out", str(teacher)], 1, root)
    assert trained.returncode == 0, trained.stderr[-3000:]
    before = {k: v.clone() for k, v in load_file(str(teacher / "model.safetensors")).items()}
    out = root / "kd"
    result = _run(["distill", "--teacher", str(teacher), "--layers", "2", "--hidden", "16", "--intermediate", "32",
                   "--dataset", str(data), "--max-steps", "3", "--eval-steps", "3", "--logging-steps", "1",
                   "--batch-size", "8", "--lr", "1e-3", "--threads", "1", "--allow-weak-teacher", "--out", str(out)], 2,
                  root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    saved = load_file(str(out / "model.safetensors"))
    assert not any("projection" in k for k in saved)  # W is not part of the student
    assert saved["bert.embeddings.word_embeddings.weight"].shape[1] == 16
    run = json.loads((out / "run.json").read_text())
    assert run["projection"] == [16, 32]
    assert run["ranks"] == {"world_size": 2, "weights_in_sync": True}  # W is all-reduced like the student
    after = load_file(str(teacher / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    steps = [e["step"] for e in _log(out) if "loss" in e]
    assert steps == [1, 2, 3]

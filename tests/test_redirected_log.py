"""A run whose output goes to a file (nohup, CI, ``> log 2>&1``) writes a readable log: no progress-bar
carriage returns, no ANSI cursor codes, no library loading reports; the losses still appear as lines."""

from __future__ import annotations

import os
import subprocess
import sys

from factories import make_model_dir
from test_distributed import _dataset_dir


def test_a_redirected_finetune_and_distill_log_has_no_bars_or_escape_codes(tmp_path):
    data, model = _dataset_dir(tmp_path), make_model_dir(tmp_path, "bert", "base")
    log = tmp_path / "run.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    common = ["--dataset", str(data), "--max-steps", "4", "--eval-steps", "2", "--logging-steps", "2",
              "--batch-size", "8", "--lr", "1e-3", "--threads", "1"]
    with log.open("w") as handle:  # stdout and stderr into one file, as `> run.log 2>&1` does
        for argv in (["finetune", str(model), *common, "--out", str(tmp_path / "teacher")],
                     ["distill", "--teacher", str(tmp_path / "teacher"), "--layers", "1", *common,
                      "--allow-weak-teacher", "--out", str(tmp_path / "student")]):
            code = subprocess.run([sys.executable, "-m", "polydistill", *argv], stdout=handle, stderr=subprocess.STDOUT,
                                  env=env, timeout=240).returncode
            assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "\x1b" not in text and "\r" not in text, text[-2000:]
    assert "it/s" not in text  # no tqdm bar, not even a final one
    assert "LOAD REPORT" not in text and "Loading weights" not in text
    assert "step 2/4: loss " in text, text[-2000:]  # the logged losses as plain lines instead

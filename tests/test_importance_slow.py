"""Importance selection on the real multilingual-e5-small and real tsm lines (run with -m slow)."""

from __future__ import annotations

import json

import pytest
import torch

from polydistill.cli import main

pytestmark = pytest.mark.slow


def test_e5_importance_student_from_real_data(e5_dir, shared_data, tmp_path):
    """A bare e5 encoder has no task loss: the activation criterion is used and recorded; the
    half-width student keeps one residual index set and loads with the Auto classes."""
    from transformers import AutoModel

    torch.set_num_threads(1)
    out = tmp_path / "student"
    argv = ["student", str(e5_dir), "--out", str(out), "--layers", "6", "--hidden", "192", "--intermediate", "768",
            "--width-select", "importance", "--calibration-data", "tsm", "--calibration-languages", "english,hindi",
            "--calibration-size", "32", "--calibration-max-length", "32", "--data-root", str(shared_data)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None)
    width = json.loads((out / "polydistill.json").read_text())["width"]
    assert width["method"] == "importance" and width["criterion"].startswith("activation")
    hidden = width["indices"]["hidden"]
    assert len(hidden) == 192 and hidden == sorted(hidden) and hidden != list(range(0, 384, 2))
    assert len(width["indices"]["head_dims"][0]) == 12 and len(width["indices"]["head_dims"][0][0]) == 16
    print(f"scoring took {width['scoring_seconds']} s on {width['calibration']['examples']} examples")

    student, teacher = AutoModel.from_pretrained(out), AutoModel.from_pretrained(e5_dir)
    h = torch.tensor(hidden)
    assert torch.equal(student.embeddings.word_embeddings.weight[:50], teacher.embeddings.word_embeddings.weight[:50, h])
    assert torch.equal(student.encoder.layer[5].output.LayerNorm.weight, teacher.encoder.layer[11].output.LayerNorm.weight[h])

"""``polydistill student --width-select importance --layer-map importance`` end to end (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from factories import make_model_dir
from polydistill.cli import app

FIX = Path(__file__).parent / "fixtures" / "data"  # tsm-format lines, invented


def test_cli_importance_width_and_layers(tmp_path):
    from transformers import AutoModelForSequenceClassification

    teacher = make_model_dir(tmp_path, "bert", "sequence")
    out = tmp_path / "student"
    args = ["student", str(teacher), "--out", str(out), "--layers", "2", "--hidden", "16", "--intermediate", "32",
            "--width-select", "importance", "--layer-map", "importance", "--calibration-data", "tsm",
            "--data-root", str(FIX), "--calibration-languages", "english,french,spanish", "--calibration-size", "8", "--seed", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    prov = json.loads((out / "polydistill.json").read_text())
    width = prov["width"]
    assert width["method"] == "importance" and width["hidden_size"] == 16
    assert len(width["indices"]["hidden"]) == 16 and width["indices"]["hidden"] == sorted(width["indices"]["hidden"])
    assert width["calibration"]["dataset"] == "tsm" and width["calibration"]["seed"] == 1
    assert width["calibration"]["examples"] == 8 and "taylor" in width["criterion"]
    chosen = width["layer_selection"]
    assert prov["teacher_layers"] == chosen["layers"] and len(chosen["trace"]) == 2
    card = (out / "README.md").read_text()
    assert "Importance selection" in card and "Teacher layers chosen by importance" in card
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 2

    # The same command and seed choose the same elements.
    again = CliRunner().invoke(app, [*args[:3], str(tmp_path / "again"), *args[4:]])
    assert again.exit_code == 0, again.output
    prov2 = json.loads((tmp_path / "again" / "polydistill.json").read_text())
    assert prov2["width"]["indices"] == width["indices"] and prov2["teacher_layers"] == prov["teacher_layers"]


def test_cli_importance_without_calibration_data_is_refused(tmp_path, capsys):
    import pytest

    from polydistill.cli import main

    teacher = make_model_dir(tmp_path, "bert", "sequence")
    with pytest.raises(SystemExit) as exit_info:
        main(["student", str(teacher), "--out", str(tmp_path / "s"), "--hidden", "16", "--width-select", "importance"])
    assert exit_info.value.code == 2
    assert "--calibration-data" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()

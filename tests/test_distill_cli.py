"""The finetune / distill commands: registered, and bad input is one sentence with exit code 2."""

from __future__ import annotations

import pytest

from polydistill.cli import main


def test_commands_registered(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich would otherwise wrap long option names
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--w-att" in text and "--pred-loss" in text and "--allow-untrained-teacher" in text


@pytest.mark.parametrize("argv, message", [
    (["distill", "--teacher", "t", "--data", "tsm", "--out", "o", "--pred-loss", "cosine"], "Invalid KD settings"),
    (["distill", "--teacher", "t", "--data", "tsm", "--out", "o", "--w-att", "-1"], "Invalid KD settings"),
    (["finetune", "m", "--data", "tsm", "--out", "o", "--fp16", "--bf16"], "--fp16 and --bf16 contradict each other"),
])
def test_bad_settings_exit_2(argv, message, capsys, tmp_path):
    argv = [a if a != "o" else str(tmp_path / "o") for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["finetune", "m", "--data", "tsm", "--out", "o", "--precision", "fp32", "--bf16"],
    ["finetune", "m", "--data", "tsm", "--out", "o", "--bf16", "--precision", "fp32"],  # order does not matter
    ["distill", "--teacher", "t", "--data", "tsm", "--out", "o", "--fp16", "--precision", "bf16"],
    ["lm-distill", "m", "--corpus", "c.txt", "--out", "o", "--precision", "auto", "--fp16"],
])
def test_a_precision_alias_contradicting_precision_is_refused_in_one_sentence(argv, capsys, tmp_path):
    argv = [a if a != "o" else str(tmp_path / "o") for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    precision = argv[argv.index("--precision") + 1]
    alias = next(a for a in argv if a in ("--fp16", "--bf16"))
    assert exit_info.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert f"--precision {precision} and {alias} contradict each other" in errors[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("values, expected", [
    ({"precision": None, "bf16": True, "fp16": False}, "bf16"),  # --bf16 alone
    ({"precision": "bf16", "bf16": True, "fp16": False}, "bf16"),  # --precision bf16 --bf16: they agree
    ({"precision": "fp16", "bf16": False, "fp16": True}, "fp16"),
    ({"precision": None, "bf16": False, "fp16": False}, "fp32"),  # nothing given: the settings' default
    ({"precision": "auto", "bf16": False, "fp16": False}, "auto"),
])
def test_agreeing_or_single_precision_flags_are_accepted(values, expected, tmp_path):
    from polydistill.cli import options as opt
    from polydistill.distill.settings import TrainSettings

    settings = opt.validated(TrainSettings, opt.without_unset_aliases({**values, "output_dir": tmp_path}), "t")
    assert settings.precision == expected


def test_settings_refuse_a_precision_alias_contradicting_precision(tmp_path):
    """The same rule for settings given as data (a grid config, the Python API): ``bf16: true`` with an
    explicit other ``precision`` is refused, an agreeing pair is fine."""
    from pydantic import ValidationError

    from polydistill.distill.settings import TrainSettings

    with pytest.raises(ValidationError, match="precision fp32 contradicts bf16: true"):
        TrainSettings(output_dir=tmp_path, precision="fp32", bf16=True)
    assert TrainSettings(output_dir=tmp_path, precision="fp16", fp16=True).precision == "fp16"
    assert TrainSettings(output_dir=tmp_path, bf16=True).precision == "bf16"

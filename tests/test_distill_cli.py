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
    (["finetune", "m", "--data", "tsm", "--out", "o", "--fp16", "--bf16"], "Invalid training settings"),
])
def test_bad_settings_exit_2(argv, message, capsys, tmp_path):
    argv = [a if a != "o" else str(tmp_path / "o") for a in argv]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

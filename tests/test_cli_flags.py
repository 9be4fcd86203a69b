"""One vocabulary of flags: every command's --help carries the shared flags with the same meaning,
the model is a positional argument or --model everywhere, and `polydistill --version` works."""

from __future__ import annotations

import pytest
import typer

from polydistill.cli import app, main

# flag → what it must mean wherever it appears (a phrase of its help) and where it must appear
SHARED = {
    "--dataset": ("massive", ["finetune", "distill", "evaluate", "vocab plan", "vocab reduce"]),
    "--languages": ("seen", ["finetune", "distill", "evaluate", "data show", "vocab plan", "vocab reduce"]),
    "--data-root": ("massive/", ["finetune", "distill", "evaluate", "student", "data show", "vocab plan",
                                 "vocab reduce"]),
    "--out": ("", ["finetune", "distill", "student", "evaluate", "vocab reduce", "lm-distill", "bench",
                   "export", "demo"]),
    "--seed": ("seed", ["finetune", "distill", "student", "lm-distill", "data show"]),
    "--threads": ("thread", ["finetune", "distill", "student", "evaluate", "lm-distill", "bench", "grid run",
                             "demo", "export"]),
    "--lr": ("learning rate", ["finetune", "distill", "lm-distill"]),
    "--precision": ("bf16", ["finetune", "distill", "lm-distill", "grid run", "demo"]),
    "--model": ("", ["finetune", "evaluate", "student", "vocab plan", "vocab reduce", "lm-distill", "bench",
                     "export"]),
}
ALIASES = {"--lr": "--learning-rate", "--dataset": "-d", "--languages": "-l", "--out": "-o", "--model": "-m"}


def _commands(group, prefix: str = "") -> dict:
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):  # a group (typer ships its own click: no isinstance)
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


COMMANDS = _commands(typer.main.get_command(app))


def _options(command) -> dict:
    return {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("flag", sorted(SHARED))
def test_shared_flags_exist_everywhere_with_one_meaning(flag):
    phrase, commands = SHARED[flag]
    helps = set()
    for name in commands:
        options = _options(COMMANDS[name])
        assert flag in options, f"{name} lacks {flag}"
        param = options[flag]
        if flag in ALIASES and not (name == "student" and flag == "--model"):
            assert ALIASES[flag] in options and options[ALIASES[flag]] is param, f"{name}: {ALIASES[flag]} alias"
        assert phrase.lower() in (param.help or "").lower(), f"{name} {flag}: {param.help!r}"
        helps.add(param.name)
    assert len(helps) == 1 or flag in ("--model", "--out"), helps  # one meaning = one parameter name


def test_model_is_positional_wherever_one_model_is_given():
    for name in ("finetune", "evaluate", "student", "vocab reduce", "vocab plan", "lm-distill", "export"):
        arguments = [p for p in COMMANDS[name].params if p.param_type_name == "argument"]
        assert arguments, f"{name} takes no positional MODEL"
    assert "--teacher" in _options(COMMANDS["distill"]) and "--student" in _options(COMMANDS["distill"])


def test_help_of_every_command_and_version(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([*name.split(), "--help"])
        assert exit_.value.code == 0, name
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and "polydistill" in capsys.readouterr().out


def test_data_languages_lists_codes_and_partitions(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "languages", "universal-ner"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "da_ddt" in out and "unseen" in out and "test-only" in out


def test_help_keeps_bracketed_words(capsys, monkeypatch):
    """Help is rendered as rich markup: an unescaped ``polydistill[ray]`` showed as ``polydistill`` (the
    install hint lost its extra). Every ``word[extra]`` written in a help must reach the screen."""
    import re

    monkeypatch.setenv("COLUMNS", "400")
    pattern = re.compile(r"[\w.-]+\\*\[[\w,.-]+\]")
    checked = 0
    for name, command in COMMANDS.items():
        wanted = {m.replace("\\", "") for p in command.params for m in pattern.findall(getattr(p, "help", None) or "")}
        if not wanted:
            continue
        with pytest.raises(SystemExit):
            main([*name.split(), "--help"])
        shown = " ".join(capsys.readouterr().out.replace("│", " ").split())
        for word in wanted:
            assert word in shown, f"{name} --help lost {word!r}"
            checked += 1
    assert checked >= 2  # grid run's polydistill[ray] and export's polydistill[openvino] at least

"""``polydistill student`` end to end, and every bad input: one sentence on stderr, exit 2, nothing written."""

import json

import pytest
import torch

from factories import make_model_dir, make_wordpiece_tokenizer
from polydistill.cli import main
from polydistill.modeling import load_model


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {
        "bert": make_model_dir(root, "bert", "sequence"),
        "bert-base": make_model_dir(root, "bert", "base", name="bert-base"),
        "electra-base": make_model_dir(root, "electra", "base"),
        "deberta": make_model_dir(root, "deberta-v2", "token"),
    }


def run(argv, capsys):
    capsys.readouterr()  # drop the fixtures' progress bars
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _no_leftovers(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_cli_builds_a_loadable_student(teachers, tmp_path, capsys):
    out = tmp_path / "student"
    code, stdout, _ = run(["student", str(teachers["deberta"]), "--out", str(out), "--layers", "2",
                           "--hidden", "16", "--intermediate", "32", "--layer-map", "alternate-first"], capsys)
    assert code in (0, None)
    assert "teacher layers [0, 2]" in stdout
    prov = json.loads((out / "polydistill.json").read_text())
    assert prov["teacher_layers"] == [0, 2] and prov["layer_map"] == "alternate-first"
    assert prov["width"]["hidden_size"] == 16 and prov["width"]["intermediate_size"] == 32
    model = load_model(out)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 16
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[1, 5, 6, 2]])).logits.shape == (1, 4, 3)
    # An existing directory is refused, then replaced with --overwrite.
    code, _, err = run(["student", str(teachers["deberta"]), "--out", str(out), "--layers", "3"], capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert json.loads((out / "polydistill.json").read_text())["num_layers"] == 2
    code, _, _ = run(["student", str(teachers["deberta"]), "--out", str(out), "--layers", "3", "--overwrite"], capsys)
    assert code in (0, None) and json.loads((out / "polydistill.json").read_text())["num_layers"] == 3


def test_from_base_and_from_scratch_via_cli(teachers, tmp_path, capsys):
    out = tmp_path / "fb"
    # The bert-base fixture has its own (independently trained) tokenizer: another vocabulary.
    code, _, err = run(["student", str(teachers["bert"]), "--out", str(out), "--init", "from-base",
                        "--base", str(teachers["bert"])], capsys)
    assert code in (0, None), err
    assert json.loads((out / "polydistill.json").read_text())["base"] == str(teachers["bert"])
    out2 = tmp_path / "fs"
    code, _, err = run(["student", str(teachers["bert"]), "--out", str(out2), "--init", "from-scratch",
                        "--layers", "1", "--seed", "5"], capsys)
    assert code in (0, None), err
    assert "nothing copied" in (out2 / "README.md").read_text()


def _bad_dirs(tmp_path, teachers):
    missing = tmp_path / "does-not-exist"
    corrupt_config = tmp_path / "corrupt-config"
    corrupt_config.mkdir()
    (corrupt_config / "config.json").write_text("{not json")
    corrupt_weights = tmp_path / "corrupt-weights"
    corrupt_weights.mkdir()
    (corrupt_weights / "config.json").write_text((teachers["bert"] / "config.json").read_text())
    (corrupt_weights / "model.safetensors").write_bytes(b"garbage" * 10)
    for tokenizer_file in teachers["bert"].glob("tokenizer*"):  # only the weights are bad
        (corrupt_weights / tokenizer_file.name).write_bytes(tokenizer_file.read_bytes())
    unsupported = tmp_path / "gpt2"
    unsupported.mkdir()
    (unsupported / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    other_vocab = tmp_path / "other-vocab"
    make_model_dir(tmp_path, "bert", "base", name="other-vocab")
    make_wordpiece_tokenizer(corpus=["completely different words in another vocabulary"] * 3,
                             vocab_size=120).save_pretrained(other_vocab)
    config = json.loads((other_vocab / "config.json").read_text())
    config["vocab_size"] = json.loads((teachers["bert"] / "config.json").read_text())["vocab_size"]
    (other_vocab / "config.json").write_text(json.dumps(config))
    bigger_vocab = make_model_dir(tmp_path, "bert", "base", name="bigger-vocab", vocab_size=999)
    return missing, corrupt_config, corrupt_weights, unsupported, other_vocab, bigger_vocab


BAD = [
    (["--layers", "5"], "between 1 and 4 layers"),
    (["--layers", "0"], "between 1 and 4 layers"),
    (["--hidden", "64"], "cannot be wider"),
    (["--intermediate", "128"], "cannot be wider"),
    (["--heads", "8"], "attention heads"),
    (["--hidden", "30"], "not divisible by the number of heads"),
    (["--layers", "2", "--layer-map", "zigzag"], "Unknown layer map"),
    (["--layers", "2", "--layer-map", "0,4"], "out of range"),
    (["--layers", "2", "--layer-map", "1,1"], "more than once"),
    (["--init", "from-base"], "needs --base"),
    (["--init", "from-nowhere"], "Unknown init"),
    (["--width-select", "magic"], "Unknown width selection"),
    (["--init", "from-base", "--base", "{electra-base}"], "architecture 'electra' but the teacher has 'bert'"),
    (["--init", "from-base", "--base", "{other-vocab}"], "another vocabulary"),
    (["--init", "from-base", "--base", "{bigger-vocab}"], "vocabulary of 999"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[m for _, m in BAD])
def test_bad_options_are_one_sentence_exit_2(teachers, tmp_path, capsys, extra, message):
    dirs = dict(zip(["missing", "corrupt-config", "corrupt-weights", "gpt2", "other-vocab", "bigger-vocab"],
                    _bad_dirs(tmp_path, teachers) if any("{" in e for e in extra) else [None] * 6, strict=True))
    dirs["electra-base"] = teachers["electra-base"]
    extra = [e.format(**dirs) if "{" in e else e for e in extra]
    out = tmp_path / "out"
    code, _, err = run(["student", str(teachers["bert"]), "--out", str(out), *extra], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [err.strip()]  # one line, nothing else
    _no_leftovers(out)


@pytest.mark.parametrize("which, message", [
    ("missing", "does not exist"),
    ("corrupt-config", "corrupt"),
    ("corrupt-weights", "may be corrupt"),
    ("gpt2", "'gpt2' is not supported"),
])
def test_bad_teachers_are_refused(teachers, tmp_path, capsys, which, message):
    dirs = dict(zip(["missing", "corrupt-config", "corrupt-weights", "gpt2", "other-vocab", "bigger-vocab"],
                    _bad_dirs(tmp_path, teachers), strict=True))
    out = tmp_path / "out"
    code, _, err = run(["student", str(dirs[which]), "--out", str(out)], capsys)
    assert code == 2 and message in err and "Traceback" not in err, err
    _no_leftovers(out)

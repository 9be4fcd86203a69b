"""Model cards ready to publish (issue #31): every output kind polydistill writes (fine-tune, student, KD,
vocabulary-reduced, export) gets a ``README.md`` that ``huggingface_hub.ModelCard.load`` reads, with the licence
and ``base_model`` (a hub id) carried from the model it was made from, languages, datasets, tags, a
``model-index`` where the command measured something, and no path of this machine anywhere in it.

The chain runs on the real command line, from a tiny base model placed in a temporary, offline Hugging Face
cache as ``fakeorg/tiny`` with a card that says ``license: apache-2.0``; every later step takes a *relative*
local directory (the one that must never reach a card)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from factories import make_model_dir
from polydistill.cli import main
from test_hub_ids import FAST, FIXTURES, publish

TSM = "cardiffnlp/tweet_sentiment_multilingual"
# the relative directory names the chain uses: none may appear in a card
LOCAL_NAMES = ("run-ft", "run-student", "run-kd", "run-vocab", "run-export", "corpus-file", "hf-cache", "made-base",
               "run-compress")


def _ok(argv: list) -> None:
    args = [str(a) for a in argv]
    with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit) as exit_info:
        mp.setattr(sys, "argv", ["polydistill", *args])  # as the console script runs it (the card's reproduce line)
        main(args)
    assert (exit_info.value.code or 0) == 0


def _write_card(model_dir: Path, **fields) -> None:
    from huggingface_hub import ModelCard, ModelCardData

    card = ModelCard(f"---\n{ModelCardData(**fields).to_yaml()}\n---\n\n# a model\n")
    (model_dir / "README.md").write_text(str(card), encoding="utf-8")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """finetune (hub id) → student → distill → vocab reduce → export, each a relative directory of cwd."""
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("cards")
    cache = root / "hf-cache"
    cache.mkdir()
    base = make_model_dir(root / "made-base", "bert", "base", name="tiny")
    _write_card(base, license="apache-2.0", language=["en", "fr", "es"])
    publish(cache, "fakeorg/tiny", base)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_CACHE", str(cache))
        mp.setattr(constants, "HF_HUB_OFFLINE", True)
        mp.setenv("HF_HUB_CACHE", str(cache))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.chdir(root)
        data = ["--dataset", "tsm", "--data-root", FIXTURES]
        _ok(["finetune", "fakeorg/tiny", *data, "-l", "english,french", "--out", "run-ft", *FAST, "--lr", "5e-3"])
        _ok(["student", "run-ft", "--out", "run-student", "--layers", "2"])
        _ok(["distill", "--teacher", "run-ft", "--student", "run-student", *data, "-l", "english", "--out", "run-kd",
             *FAST, "--allow-weak-teacher"])
        Path("corpus-file.txt").write_text(
            "hello world this is a small test corpus\nwhat is the weather like in paris today\n" * 5, encoding="utf-8")
        _ok(["vocab", "reduce", "run-kd", "--corpus", "corpus-file.txt", "--out", "run-vocab"])
        _ok(["export", "run-kd", "--out", "run-export"])
        yield {"root": root, "cache": cache, "finetune": root / "run-ft", "student": root / "run-student",
               "distill": root / "run-kd", "vocab-reduce": root / "run-vocab", "export": root / "run-export"}


KINDS = ("finetune", "student", "distill", "vocab-reduce", "export")


def _no_machine_path(text: str, root: Path, cache: Path) -> None:
    for bad in (str(root), str(root.resolve()), str(cache), "/tmp", "/root", "/home", os.path.expanduser("~"),
                *LOCAL_NAMES):
        assert bad not in text, f"{bad!r} in the card:\n{text}"


@pytest.mark.parametrize("kind", KINDS)
def test_card_loads_with_publishable_metadata(chain, kind):
    from huggingface_hub import ModelCard

    card = ModelCard.load(chain[kind] / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "apache-2.0"  # the hub model's licence, carried through every step
    assert data["base_model"] == "fakeorg/tiny"  # the hub id the chain started from, never a local directory
    assert {"polydistill", kind, "text-classification"} <= set(data["tags"])
    assert ("knowledge-distillation" in data["tags"]) == (kind != "finetune")
    assert data["pipeline_tag"] == "text-classification"
    assert data["language"], data
    assert set(data["language"]) <= {"en", "fr", "es"}
    if kind in ("finetune", "distill", "export"):  # trained on tsm (export: carried from the exported model)
        assert data["datasets"] == [TSM]
        [result] = card.data.eval_results
        assert result.dataset_type == TSM and result.metric_type == "f1"
        assert result.dataset_split == "validation"  # only dev F1 was measured: labelled as such
        assert 0.0 <= result.metric_value <= 1.0
    _no_machine_path(str(card), chain["root"], chain["cache"])


@pytest.mark.parametrize("kind", KINDS)
def test_card_round_trips_and_names_only_files_that_exist(chain, kind):
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    card = ModelCard.load(chain[kind] / "README.md")
    data = card.data.to_dict()
    again = ModelCard(str(card)).data.to_dict()
    assert again == data
    if card.data.eval_results:  # model-index → EvalResult → model-index is stable
        index = eval_results_to_model_index(card.data.model_name, card.data.eval_results)
        name, results = model_index_to_eval_results(index)
        assert name == card.data.model_name and results == card.data.eval_results
    ModelCardData(**{k: v for k, v in data.items() if k != "model-index"})  # every field accepted
    for name in re.findall(r"`([\w.-]+\.json)`", card.text):
        assert (chain[kind] / name).is_file(), f"the card names {name}, which {kind} did not write"


def test_finetune_card_names_no_missing_provenance(chain):
    from huggingface_hub import ModelCard

    out = chain["finetune"]
    text = ModelCard.load(out / "README.md").text
    assert ("polydistill.json" in text) == (out / "polydistill.json").is_file()
    assert "run.json" in text and "polydistill finetune fakeorg/tiny" in text  # the reproduce line keeps the hub id
    assert "--out OUT" in text and "--data-root DATA_ROOT" in text  # local paths become placeholders


def test_int8_export_card_carries_the_source_metadata(chain):
    from huggingface_hub import ModelCard

    card = ModelCard.load(chain["export"] / "README.md")
    assert {"onnx", "int8"} <= set(card.data.tags) and card.data.library_name == "onnx"
    [result] = card.data.eval_results
    assert "before export" in result.metric_name  # the source model's number, named as such


def test_compress_cards_carry_the_reports_test_f1(chain):
    """compress's final models (PyTorch and int8): the model-index holds the report's test F1 (per language
    group and per language), not the KD run's validation F1; the appended report names no path."""
    from huggingface_hub import ModelCard

    _ok(["compress", "run-ft", "--dataset", "tsm", "--data-root", FIXTURES, "-l", "english", "--unseen-languages",
         "spanish", "--out", "run-compress", "--size", "tiny", "--max-steps", "2", "--no-wordfreq",
         "--calibration-size", "16", "--bench-lengths", "16", "--bench-repeats", "1", "--speedup-repeats", "1",
         "--max-length", "32", "--batch-size", "16", "--allow-weak-teacher"])
    out = chain["root"] / "run-compress"
    quality = json.loads((out / "report.json").read_text())["quality"]
    for directory, model in (("model", "kd"), ("model-int8", "int8")):
        card = ModelCard.load(out / directory / "README.md")
        data = card.data.to_dict()
        assert data["license"] == "apache-2.0" and data["base_model"] == "fakeorg/tiny"
        assert data["datasets"] == [TSM] and "polydistill" in data["tags"]
        results = card.data.eval_results
        assert results and {r.dataset_split for r in results} == {"test"}
        measured = quality["models"][model]
        by_config = {r.dataset_config: r.metric_value for r in results if r.dataset_config}
        assert by_config == {la: round(v, 4) for la, v in measured["per_language"].items() if v is not None}
        groups = [r for r in results if not r.dataset_config]
        assert [r.metric_value for r in groups] == [round(v, 4) for v in measured["groups"].values() if v is not None]
        assert "## polydistill compress" in card.text
        _no_machine_path(str(card), chain["root"], chain["cache"])


def test_local_teacher_without_hub_origin_keeps_licence_and_omits_base_model(tmp_path, monkeypatch):
    """A teacher that exists only on this machine: its card's licence carries over, base_model is left out
    (never a path), and the body names no directory."""
    from huggingface_hub import ModelCard

    from polydistill.student.build import build_student

    teacher = make_model_dir(tmp_path / "made-base", "xlm-roberta", "sequence", name="local-teacher")
    _write_card(teacher, license="mit", language=["de"])
    monkeypatch.chdir(tmp_path)
    build_student(Path("made-base") / "local-teacher", Path("run-student"), layers=2)
    card = ModelCard.load(tmp_path / "run-student" / "README.md")
    data = card.data.to_dict()
    assert data["license"] == "mit" and "base_model" not in data
    assert data["language"] == ["de"]
    assert {"polydistill", "student", "knowledge-distillation"} <= set(data["tags"])
    assert "local-teacher" not in str(card)
    _no_machine_path(str(card), tmp_path, tmp_path / "hf-cache")

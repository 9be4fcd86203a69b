"""VocabReduce output: the reduced directory loads with AutoTokenizer for every family, keeps prompt
prefixes, carries only its own provenance / card and the known usage files; CLI plan / dry run / refusals."""

from __future__ import annotations

import json

import pytest
import torch

from factories import CORPUS, make_model_dir
from polydistill.errors import PolydistillError
from polydistill.modeling import load_tokenizer
from polydistill.vocab.reduce import vocab_reduce
from polydistill.vocab.sources import read_corpus_files

ENGLISH = CORPUS[:4]


def _bpe_model_dir(tmp_path, byte_level: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoModel, PreTrainedTokenizerFast, RobertaConfig

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    if byte_level:
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        raw = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
        raw.pre_tokenizer = pre_tokenizers.Whitespace()
        raw.decoder = decoders.BPEDecoder(suffix="</w>")
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, end_of_word_suffix="</w>")
    raw.train_from_iterator(CORPUS * 5, trainer)
    raw.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    model = AutoModel.from_config(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32, pad_token_id=1)).eval()
    src = tmp_path / ("bpe-bytes" if byte_level else "bpe-chars")
    model.save_pretrained(src)
    tok.save_pretrained(src)
    return src


def _source(tmp_path, family: str):
    if family == "wordpiece":
        return make_model_dir(tmp_path, "bert")
    if family == "unigram":
        return make_model_dir(tmp_path, "xlm-roberta")
    return _bpe_model_dir(tmp_path, byte_level=family == "bpe-bytes")


@pytest.mark.parametrize("family", ["wordpiece", "unigram", "bpe-bytes", "bpe-chars"])
def test_reduced_tokenizer_round_trips_through_autotokenizer(tmp_path, family):
    from transformers import AutoModel, AutoTokenizer

    src = _source(tmp_path, family)
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0)
    old = AutoTokenizer.from_pretrained(src)
    new = AutoTokenizer.from_pretrained(result.path)
    assert new.is_fast and len(new) == result.plan.new_size < len(old)
    assert AutoModel.from_pretrained(result.path).get_input_embeddings().weight.shape[0] == len(new)
    old_to_new = result.plan.old_to_new
    for text in ENGLISH:
        assert [old_to_new[i] for i in old(text)["input_ids"]] == new(text)["input_ids"]
    # the saved and re-loaded tokenizer is the one the plan measured: same ids on foreign text too
    reloaded = AutoTokenizer.from_pretrained(result.path)
    for text in CORPUS[4:] + ["日本語のテキスト", ""]:
        ids = new(text)["input_ids"]
        assert ids == reloaded(text)["input_ids"] and all(0 <= i < len(new) for i in ids)
    assert result.plan.model_type == ("WordPiece" if family == "wordpiece" else
                                      "Unigram" if family == "unigram" else "BPE")


# ---------------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_e5_prompt_prefixes_are_kept(tmp_path, arch):
    src = make_model_dir(tmp_path, arch, name="multilingual-e5-tiny")
    old = load_tokenizer(src)
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0)
    new = load_tokenizer(result.path)
    assert result.plan.keep_text == ["query: ", "passage: "]
    old_to_new = result.plan.old_to_new
    for text in ("query: hello world", "passage: wake me up at seven"):
        assert [old_to_new.get(i) for i in old(text)["input_ids"]] == new(text)["input_ids"]
    assert result.provenance["vocab_reduction"]["keep_text"] == ["query: ", "passage: "]
    # a model that is not e5 keeps only what it is told to
    plain = make_model_dir(tmp_path, arch, name="plain")
    assert vocab_reduce(plain, ENGLISH, None, min_sentence_freq=0.0).plan.keep_text == []
    told = vocab_reduce(plain, ENGLISH, None, min_sentence_freq=0.0, keep_text=["summarize: "]).plan
    assert told.keep_text == ["summarize: "]
    assert set(old("summarize: ", add_special_tokens=False)["input_ids"]) <= set(told.kept_ids)


def test_sentence_transformers_prompts_are_kept(tmp_path):
    src = make_model_dir(tmp_path, "xlm-roberta", name="plain")
    (src / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"q": "quel: "}}))
    plan = vocab_reduce(src, ENGLISH, None, min_sentence_freq=0.0).plan
    assert plan.keep_text == ["quel: "]
    tok = load_tokenizer(src)
    assert set(tok("quel: ", add_special_tokens=False)["input_ids"]) <= set(plan.kept_ids)


# ------------------------------------------------------------------------------------- directory
def test_only_own_provenance_card_and_known_usage_files(tmp_path):
    src = make_model_dir(tmp_path, "xlm-roberta", name="e5-tiny")
    (src / "FIXTURE.json").write_text(json.dumps({"params": "stale"}))
    (src / "README.md").write_text("# the fixture builder's card\n")
    (src / "modeling_custom.py").write_text("raise SystemExit('remote code')\n")
    for name in ("config.json", "tokenizer_config.json"):
        data = json.loads((src / name).read_text())
        data["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
        (src / name).write_text(json.dumps(data))
    (src / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (src / "1_Pooling").mkdir()
    (src / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    (src / "1_Pooling" / "helper.py").write_text("")
    (src / "2_Normalize").mkdir()
    (src / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512}))
    (src / "notes.txt").write_text("not a usage file")
    out = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0).path
    names = {p.name for p in out.iterdir()}
    assert {"modules.json", "sentence_bert_config.json", "1_Pooling", "2_Normalize", "polydistill.json",
            "README.md", "config.json", "tokenizer.json"} <= names
    assert not names & {"FIXTURE.json", "notes.txt", "modeling_custom.py"}
    assert not list(out.rglob("*.py"))
    for name in ("config.json", "tokenizer_config.json"):
        assert "auto_map" not in json.loads((out / name).read_text())
    card = (out / "README.md").read_text()
    assert "fixture builder" not in card and "vocab-reduce" in card
    assert "| vocabulary |" in card and "| parameters |" in card  # the before / after table
    assert "pipeline_tag: text-classification" in card
    prov = json.loads((out / "polydistill.json").read_text())
    assert set(prov) >= {"vocab_reduction", "versions"} and "params" not in prov


# ------------------------------------------------------------------------------------------ corpora
def test_non_utf8_corpus_is_refused_with_file_and_line(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("hello world\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(PolydistillError, match=r"latin1.txt is not UTF-8 text \(line 2"):
        read_corpus_files([bad])


def test_jsonl_and_datasets_folder_corpora(tmp_path):
    from datasets import Dataset

    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": 7}) for t in ENGLISH[:2]) + "\n")
    folder = tmp_path / "ds"
    Dataset.from_dict({"text": ENGLISH[2:], "label": [0, 1]}).save_to_disk(str(folder))
    assert [t.strip() for t in read_corpus_files([jsonl, folder])] == ENGLISH
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(PolydistillError, match="line 2 has no \"text\""):
        list(read_corpus_files([tmp_path / "bad.jsonl"]))
    with pytest.raises(PolydistillError, match="does not exist"):
        read_corpus_files([tmp_path / "missing.txt"])


# ---------------------------------------------------------------------------------------------- CLI
def _run(argv, capsys):
    from polydistill.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    return exit_.value.code, captured.out, captured.err


def test_cli_plan_report_and_dry_run(tmp_path, capsys):
    src = make_model_dir(tmp_path, "xlm-roberta")
    corpus, held = tmp_path / "en.txt", tmp_path / "held.txt"
    corpus.write_text("\n".join(ENGLISH) + "\n")
    held.write_text("hello world\nplay some jazz\nbonjour le monde\n")
    report = tmp_path / "plan.json"
    code, out, err = _run(["vocab", "plan", str(src), "--corpus", str(corpus), "--heldout", str(held),
                           "--min-sentence-freq", "0", "--report", str(report)], capsys)
    assert code in (0, None), err
    assert "token cov." in out and "sentence cov." in out and "Vocabulary and parameters" in out
    data = json.loads(report.read_text())
    row = data["languages"]["text"]
    assert row["sentences"] == 3 and 0 < row["token_coverage"] < 1
    assert data["vocab_after"] < data["vocab_before"] and data["params_after"] < data["params_before"]
    code, out, err = _run(["vocab", "reduce", str(src), "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                           "--dry-run"], capsys)
    assert code in (0, None), err
    assert "dry run" in out and not (tmp_path / "o").exists()


def test_cli_dataset_inputs_and_refusals(tmp_path, capsys):
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "data"
    src = make_model_dir(tmp_path, "bert")
    out = tmp_path / "out"
    code, stdout, err = _run(["vocab", "reduce", str(src), "--dataset", "tsm", "-l", "english", "--data-root",
                              str(fixtures), "--min-sentence-freq", "0", "--out", str(out)], capsys)
    assert code == 0, err
    assert "tsm english validation inputs" in stdout and "fewer" in stdout
    rec = json.loads((out / "polydistill.json").read_text())["vocab_reduction"]
    assert rec["corpus"]["sentences"] == 6  # the 6 train inputs; labels are never read as text
    assert rec["sources"][0]["description"] == "tsm english train inputs"
    assert rec["coverage"][0]["language"] == "en"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok\n\xff\xfe broken\n")
    for argv, message in (
        (["--corpus", str(bad)], "latin1.txt is not UTF-8 text (line 2"),
        (["--corpus", str(tmp_path / "nope.txt")], "does not exist"),
        (["--dataset", "tsm", "-l", "english", "--data-root", str(fixtures), "--min-sentence-freq", "1.0"],
         "keeps no sub-word"),
        (["--languages", "en"], "--languages needs --dataset"),
        ([], "--corpus"),
    ):
        code, _, err = _run(["vocab", "reduce", str(src), "--out", str(tmp_path / "o2"), *argv], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "o2").exists()


def test_cli_refuses_a_language_wordfreq_lacks(tmp_path, capsys):
    pytest.importorskip("wordfreq")
    src = make_model_dir(tmp_path, "bert")
    code, _, err = _run(["vocab", "plan", str(src), "--wordfreq", "en,sw"], capsys)
    assert code == 2 and "no word list for 'sw'" in err
    code, out, err = _run(["vocab", "plan", str(src), "--wordfreq", "en", "--wordfreq-words", "300"], capsys)
    assert code in (0, None), err
    assert "wordfreq en top 300 words" in out

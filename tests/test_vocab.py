"""VocabReduce: same tokens and outputs on the kept language, documented fallback elsewhere, contiguous ids."""

from __future__ import annotations

import json

import pytest
import torch

from factories import CORPUS, make_model_dir
from polydistill.errors import PolydistillError
from polydistill.modeling import load_model, load_tokenizer
from polydistill.vocab.reduce import vocab_reduce

ENGLISH = CORPUS[:4]  # the "kept language"; the other sentences are foreign text


def _reduce(tmp_path, arch, task="sequence", sentences=ENGLISH, **kwargs):
    src = make_model_dir(tmp_path, arch, task)
    result = vocab_reduce(src, sentences, tmp_path / "reduced", min_sentence_freq=kwargs.pop("freq", 0.0), **kwargs)
    return src, result


def _backend(tokenizer) -> dict:
    return json.loads(tokenizer.backend_tokenizer.to_str())


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_same_tokens_and_logits_on_kept_language(tmp_path, arch):
    src, result = _reduce(tmp_path, arch)
    old_tok, new_tok = load_tokenizer(src), load_tokenizer(result.path)
    old_model, new_model = load_model(src), load_model(result.path)
    old_to_new = result.plan.old_to_new
    batch_old = old_tok(ENGLISH, padding=True, return_tensors="pt")
    batch_new = new_tok(ENGLISH, padding=True, return_tensors="pt")
    mapped = batch_old["input_ids"].clone().apply_(lambda i: old_to_new[i])
    assert torch.equal(mapped, batch_new["input_ids"])
    with torch.no_grad():
        old_logits = old_model(**batch_old).logits
        new_logits = new_model(**batch_new).logits
    torch.testing.assert_close(old_logits, new_logits, rtol=0, atol=1e-6)
    # the vocabulary really shrank and the model and tokenizer agree on its size
    assert len(new_tok) == new_model.config.vocab_size == new_model.get_input_embeddings().weight.shape[0]
    assert len(new_tok) < len(old_tok)


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta", "deberta-v2"])
def test_ids_are_contiguous_and_special_ids_remapped(tmp_path, arch):
    src, result = _reduce(tmp_path, arch)
    tok = load_tokenizer(result.path)
    backend = _backend(tok)
    vocab = tok.get_vocab()
    assert sorted(vocab.values()) == list(range(len(vocab)))
    model_vocab = backend["model"]["vocab"]
    ids = sorted(model_vocab.values()) if isinstance(model_vocab, dict) else list(range(len(model_vocab)))
    assert ids == list(range(len(ids)))
    for added in backend["added_tokens"]:
        assert vocab[added["content"]] == added["id"]
    # the post-processor adds the remapped [CLS]/<s> and [SEP]/</s>
    enc = tok("hello world")["input_ids"]
    assert enc[0] == tok.cls_token_id == vocab[tok.cls_token] and enc[-1] == tok.sep_token_id
    config = load_model(result.path).config
    assert config.pad_token_id == tok.pad_token_id


def _greedy_wordpiece(word: str, vocab: set[str], unk: str = "[UNK]") -> list[str]:
    """Independent reference: WordPiece's greedy longest-match-first, whole word -> unk on failure."""
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


def test_wordpiece_fallback_for_foreign_words(tmp_path):
    src, result = _reduce(tmp_path, "bert")
    old_tok, tok = load_tokenizer(src), load_tokenizer(result.path)
    vocab = set(tok.get_vocab())
    # a word whose pieces were removed but whose characters are English: split greedily into kept pieces
    for word in ["hallo", "kleiner", "musik", "mundo"]:
        assert old_tok.tokenize(word) != ["[UNK]"]
        expected = _greedy_wordpiece(word, vocab)
        assert expected != ["[UNK]"]
        assert tok.tokenize(word) == expected
    removed = {p for p in old_tok.tokenize("hallo kleiner bonjour") if p not in vocab}
    assert removed, "the test words must use pieces the reduction removed"
    # a word with a character never seen in the English corpus ('b', 'q') becomes ONE [UNK], as WordPiece does
    assert tok.tokenize("bonjour") == ["[UNK]"] and old_tok.tokenize("bonjour") == ["bonjour"]
    assert tok.tokenize("in der quel") == ["in", *_greedy_wordpiece("der", vocab), "[UNK]"]
    # characters are compared after the tokenizer's normalisation (BERT strips accents: ü -> u)
    assert tok.tokenize("küche") == _greedy_wordpiece("kuche", vocab) != ["[UNK]"]
    # never crashes, whatever the script
    for text in CORPUS + ["日本語のテキスト", "Ελληνικά", "🙂🙂", ""]:
        ids = tok(text)["input_ids"]
        assert all(0 <= i < len(tok) for i in ids)


def _viterbi(text: str, scores: dict[str, float]) -> list[str]:
    """Independent reference: the highest-scoring segmentation into the given pieces."""
    best = [(0.0, [])] + [(-float("inf"), None)] * len(text)
    for end in range(1, len(text) + 1):
        for start in range(end):
            piece = text[start:end]
            if piece in scores and best[start][1] is not None:
                cand = best[start][0] + scores[piece]
                if cand > best[end][0]:
                    best[end] = (cand, best[start][1] + [piece])
    return best[-1][1]


def test_unigram_fallback_for_foreign_words(tmp_path):
    src, result = _reduce(tmp_path, "xlm-roberta")
    old_tok, tok = load_tokenizer(src), load_tokenizer(result.path)
    backend = _backend(tok)
    scores = {piece: score for piece, score in backend["model"]["vocab"] if piece not in tok.all_special_tokens}
    for word in ["hallo", "kleiner", "musik", "mundo"]:
        expected = _viterbi("\u2581" + word, scores)
        assert expected is not None
        assert tok.tokenize(word) == expected
    assert any(old_tok.tokenize(w) != tok.tokenize(w) for w in ["hallo", "kleiner", "musik", "mundo"])
    # characters without a kept single-character piece map to <unk>; the rest of the word survives
    ids = tok("küche", add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id in ids and len(ids) > 1
    assert tok.convert_ids_to_tokens([i for i in ids if i != tok.unk_token_id]) == \
        [p for p in _viterbi("\u2581k", scores) + _viterbi("che", scores)]
    for text in CORPUS + ["日本語のテキスト", "Ελληνικά", "🙂", ""]:
        ids = tok(text)["input_ids"]
        assert all(0 <= i < len(tok) for i in ids)


def test_threshold_and_max_tokens(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    tok = load_tokenizer(src)
    sentences = ["wake me up", "wake me", "wake up", "play jazz"]
    # freq 0.5 of 4 sentences -> at least 2 sentences: wake (3), me (2), up (2); not play/jazz (1)
    res = vocab_reduce(src, sentences, None, min_sentence_freq=0.5)
    assert res.plan.min_count == 2
    kept = {tok.convert_ids_to_tokens(i) for i in res.plan.kept_ids}
    assert {"wake", "me", "up"} <= kept
    frequent_ids = {i for i in res.plan.kept_ids if tok.convert_ids_to_tokens(i) not in tok.all_special_tokens
                    and len(tok.convert_ids_to_tokens(i).removeprefix("##")) > 1}
    assert {tok.convert_ids_to_tokens(i) for i in frequent_ids} == {"wake", "me", "up"}
    capped = vocab_reduce(src, sentences, None, min_sentence_freq=0.5, max_tokens=1)
    assert capped.plan.reasons["frequent"] == 1
    assert "wake" in {tok.convert_ids_to_tokens(i) for i in capped.plan.kept_ids}
    for special in tok.all_special_ids:
        assert special in capped.plan.kept_ids


def test_mlm_head_tied_decoder_and_bias(tmp_path):
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

    from factories import make_config, make_wordpiece_tokenizer

    tok = make_wordpiece_tokenizer()
    torch.manual_seed(0)
    model = BertForMaskedLM(make_config("bert", tok)).eval()
    with torch.no_grad():
        model.cls.predictions.bias.normal_()  # so a wrongly sliced bias shows
    src = tmp_path / "mlm"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0)
    new = AutoModelForMaskedLM.from_pretrained(result.path).eval()
    assert isinstance(new.config, BertConfig)
    assert new.cls.predictions.decoder.weight.data_ptr() == new.bert.embeddings.word_embeddings.weight.data_ptr()
    new_tok = load_tokenizer(result.path)
    old_b, new_b = tok(ENGLISH, padding=True, return_tensors="pt"), new_tok(ENGLISH, padding=True, return_tensors="pt")
    with torch.no_grad():
        old_logits, new_logits = model(**old_b).logits, new(**new_b).logits
    index = torch.tensor(result.plan.kept_ids)
    torch.testing.assert_close(old_logits[..., index], new_logits, rtol=0, atol=1e-5)


def test_provenance_merged_and_model_card(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    (src / "polydistill.json").write_text(json.dumps({"teacher": "big-teacher", "teacher_layers": [0, 2]}))
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0, corpus_description="english")
    prov = json.loads((result.path / "polydistill.json").read_text())
    assert prov["teacher"] == "big-teacher" and prov["teacher_layers"] == [0, 2]
    rec = prov["vocab_reduction"]
    assert rec["vocab_after"] == len(load_tokenizer(result.path))
    assert rec["vocab_before"] - rec["vocab_after"] == rec["removed"] > 0
    assert rec["params_after"] < rec["params_before"]
    assert rec["corpus"] == {"description": "english", "sentences": 4, "characters": rec["corpus"]["characters"]}
    card = (result.path / "README.md").read_text()
    assert "vocab reduce" in card and f"{rec['vocab_after']:,}" in card


def test_atomic_and_errors(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(PolydistillError, match="already exists"):
        vocab_reduce(src, ENGLISH, out)
    assert (out / "keep.txt").is_file()
    with pytest.raises(PolydistillError, match="empty"):
        vocab_reduce(src, ["", "  "], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    with pytest.raises(PolydistillError, match="fraction"):
        vocab_reduce(src, ENGLISH, tmp_path / "out3", min_sentence_freq=2.0)


def test_byte_level_bpe(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoModel, PreTrainedTokenizerFast, RobertaConfig

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(CORPUS * 5, trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    raw.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>", cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    model = AutoModel.from_config(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32, pad_token_id=1)).eval()
    src = tmp_path / "bpe"
    model.save_pretrained(src)
    tok.save_pretrained(src)
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0)
    new_tok = load_tokenizer(result.path)
    assert result.plan.new_size < len(tok)
    for text in ENGLISH:
        assert [result.plan.old_to_new[i] for i in tok(text)["input_ids"]] == new_tok(text)["input_ids"]
    for text in CORPUS[4:] + ["日本語"]:
        ids = new_tok(text)["input_ids"]
        assert new_tok.unk_token_id not in ids  # byte-level alphabet kept: everything is still representable
        assert new_tok.decode(ids, skip_special_tokens=True) == text


def test_cli_vocab_reduce(tmp_path, capsys):
    from polydistill.cli import main

    src = make_model_dir(tmp_path, "xlm-roberta", "token")
    corpus = tmp_path / "en.txt"
    corpus.write_text("\n".join(ENGLISH) + "\n")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["vocab", "reduce", "--model", str(src), "--corpus", str(corpus), "--out", str(out),
              "--min-sentence-freq", "0"])
    assert exit_.value.code == 0
    assert "fewer" in capsys.readouterr().out
    assert load_model(out).config.vocab_size == len(load_tokenizer(out)) < len(load_tokenizer(src))
    assert type(load_model(out)).__name__ == "XLMRobertaForTokenClassification"
    # an existing output without --overwrite, or no corpus at all: one sentence on stderr, exit code 2
    for argv, message in ((["--corpus", str(corpus)], "already exists"), ([], "--corpus")):
        with pytest.raises(SystemExit) as exit_:
            main(["vocab", "reduce", "--model", str(src), "--out", str(out), *argv])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "error: " in err and message in err and "Traceback" not in err


@pytest.mark.slow
def test_real_e5_reduced_to_swahili(tmp_path, e5_dir, shared_data):
    """Real check: multilingual-e5-small reduced to MASSIVE sw-KE (≥ 60 % fewer parameters, same outputs)."""
    import gzip

    rows = [json.loads(line) for line in gzip.open(shared_data / "massive/data/sw-KE.jsonl.gz", "rt")]
    train = [r["utt"] for r in rows if r["partition"] == "train"]
    test = [r["utt"] for r in rows if r["partition"] == "test"][:200]
    result = vocab_reduce(e5_dir, train, tmp_path / "e5-sw", corpus_description="MASSIVE sw-KE train")
    rec = result.provenance["vocab_reduction"]
    assert rec["params_after"] <= 0.4 * rec["params_before"]
    old_tok, new_tok = load_tokenizer(e5_dir), load_tokenizer(result.path)
    old_model, new_model = load_model(e5_dir), load_model(result.path)
    old_to_new = result.plan.old_to_new
    same = 0
    for text in test:
        old_ids, new_ids = old_tok(text)["input_ids"], new_tok(text)["input_ids"]
        assert new_tok.unk_token_id not in new_ids  # Swahili characters are all kept
        if all(i in old_to_new for i in old_ids):
            assert [old_to_new[i] for i in old_ids] == new_ids
            same += 1
            if same <= 20:
                with torch.no_grad():
                    a = old_model(torch.tensor([old_ids])).last_hidden_state
                    b = new_model(torch.tensor([new_ids])).last_hidden_state
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert same >= len(test) // 2
    assert (result.path / "1_Pooling").is_dir()  # still a sentence-transformers model


def test_reduce_a_built_student_post_distillation(tmp_path):
    from polydistill.student.build import build_student

    teacher = make_model_dir(tmp_path, "deberta-v2", "token")
    built = build_student(teacher, tmp_path / "student", layers=2, layer_map="alternate-first")
    result = vocab_reduce(built.path, ENGLISH, tmp_path / "reduced", min_sentence_freq=0.0)
    prov = json.loads((result.path / "polydistill.json").read_text())
    assert prov["teacher_layers"] == built.provenance["teacher_layers"] == [0, 2]
    assert prov["teacher"] == built.provenance["teacher"]
    assert prov["parameters"] == prov["vocab_reduction"]["params_after"] < built.provenance["parameters"]
    model, tok = load_model(result.path), load_tokenizer(result.path)
    assert type(model).__name__ == "DebertaV2ForTokenClassification" and model.config.num_hidden_layers == 2
    batch = tok(ENGLISH, padding=True, return_tensors="pt")
    old = built.tokenizer(ENGLISH, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(built.model(**old).logits, model(**batch).logits, rtol=0, atol=1e-5)

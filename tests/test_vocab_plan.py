"""VocabReduce planning: combined sources, per-language thresholds, coverage (hand-computed) and targeting,
language codes, refusals. Tiny tokenizers only; a fake word-frequency list replaces wordfreq's data."""

from __future__ import annotations

import numpy as np
import pytest

from factories import CORPUS, make_model_dir
from polydistill.errors import PolydistillError
from polydistill.modeling import load_tokenizer
from polydistill.vocab.coverage import coverage, encode_heldout, rank_cut
from polydistill.vocab.reduce import plan_vocab, vocab_reduce
from polydistill.vocab.sources import (
    HeldoutText,
    TextSource,
    language_key,
    wordfreq_code,
    wordfreq_source,
)

ENGLISH = CORPUS[:4]
GERMAN = CORPUS[8:10]
# A made-up frequency list (word -> share of running words), injected instead of wordfreq's data.
FAKE_LISTS = {"en": {"hello": 0.02, "music": 0.01, "kitchen": 0.004, "musik": 0.0001},
              "de": {"hallo": 0.02, "welt": 0.01, "musik": 0.005, "küche": 0.001}}


def _pieces(tok, text: str) -> set[int]:
    return set(tok.backend_tokenizer.encode(text, add_special_tokens=False).ids)


# ------------------------------------------------------------------------------------------- sources
def test_language_keys_and_wordfreq_codes():
    assert language_key("english") == language_key("en-US") == language_key("en") == "en"
    assert language_key("tl-PH") == language_key("fil") == "fil"  # MASSIVE Tagalog is wordfreq's Filipino
    assert language_key("nb-NO") == "nb" and language_key("zh_gsd") == "zh"
    assert language_key(None) == "text"
    available = {"en", "fil", "nb", "sh", "de"}
    assert wordfreq_code("tl-PH", available) == "fil"
    assert wordfreq_code("nb-NO", available) == "nb"
    assert wordfreq_code("hr_set", available) == "sh"
    with pytest.raises(PolydistillError, match="no word list for 'sw-KE'"):
        wordfreq_code("sw-KE", available)


def test_wordfreq_selection_by_count_mass_and_case():
    by_count = wordfreq_source("en", words=2, capitalized=False, frequencies=FAKE_LISTS)
    assert [w for w, _ in by_count.words] == ["hello", "music"]
    by_mass = wordfreq_source("en-US", mass=0.025, capitalized=False, frequencies=FAKE_LISTS)
    assert [w for w, _ in by_mass.words] == ["hello", "music"]  # 0.02 < 0.025 <= 0.03
    assert by_mass.code == "en" and by_mass.selection["mass"] == 0.03
    cased = wordfreq_source("en", words=1, frequencies=FAKE_LISTS)
    assert cased.words == [("hello", 0.02), ("Hello", 0.02)]
    with pytest.raises(PolydistillError, match="no word list for 'sw'"):
        wordfreq_source("sw", frequencies=FAKE_LISTS)


def test_real_wordfreq_package():
    wordfreq = pytest.importorskip("wordfreq")
    source = wordfreq_source("en", words=1000, capitalized=False)
    words = [w for w, _ in source.words]
    assert len(words) == 1000 and "the" in words[:5]
    assert words == wordfreq.top_n_list("en", 1000)
    # wordfreq itself would silently answer in English for Swahili; we refuse
    with pytest.raises(PolydistillError, match="no word list for 'sw'"):
        wordfreq_source("sw")
    with pytest.raises(PolydistillError, match="no word list"):
        wordfreq_source("am-ET")


# ------------------------------------------------------------------------------------------ planning
@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_union_of_sources_keeps_a_word_only_in_the_word_list(tmp_path, arch):
    src = make_model_dir(tmp_path, arch)
    tok = load_tokenizer(src)
    only_corpus = plan_vocab(src, ENGLISH, min_sentence_freq=0.0).plan
    kuche = _pieces(tok, "küche")
    assert not kuche <= set(only_corpus.kept_ids), "the word must need pieces the corpus does not give"
    combined = plan_vocab(src, ENGLISH, sources=[wordfreq_source("de", frequencies=FAKE_LISTS)],
                          min_sentence_freq=0.0).plan
    kept = set(combined.kept_ids)
    assert kuche <= kept and _pieces(tok, "hallo") <= kept and _pieces(tok, "Hallo") <= kept
    assert set(only_corpus.kept_ids) <= kept  # a union: nothing the corpus selected is lost
    assert combined.reasons["wordfreq"] > 0
    assert [s["kind"] for s in combined.sources] == ["corpus", "wordfreq"]
    # the unlabelled corpus joins the only language named elsewhere
    assert {s["language"] for s in combined.sources} == {"de"}


def test_wordfreq_mass_threshold(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    tok = load_tokenizer(src)
    words = wordfreq_source("en", capitalized=False, frequencies=FAKE_LISTS)
    plan = plan_vocab(src, sources=[words], wordfreq_min_freq=0.005).plan
    kept = set(plan.kept_ids)
    assert _pieces(tok, "hello") <= kept and _pieces(tok, "music") <= kept
    rare = _pieces(tok, "kitchen") - _pieces(tok, "hello") - _pieces(tok, "music")
    multi_char = {i for i in rare if len(tok.convert_ids_to_tokens(i).removeprefix("##")) > 1}
    assert multi_char and not multi_char & kept  # "kitchen"'s own pieces carry only 0.004 < 0.005
    with pytest.raises(PolydistillError, match="--wordfreq-min-freq 0.5 keeps no sub-word of wordfreq en"):
        plan_vocab(src, sources=[words], wordfreq_min_freq=0.5)


def test_one_languages_threshold_does_not_drop_another_languages_tokens(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    tok = load_tokenizer(src)
    english = ENGLISH * 10  # 40 sentences: 0.05 -> a sub-word needs 2 of them
    german = GERMAN[:1]  # 1 sentence: 0.05 -> 1 of them
    per_language = plan_vocab(src, sources=[TextSource(english, "en", "en"), TextSource(german, "de", "de")],
                              min_sentence_freq=0.05).plan
    assert _pieces(tok, GERMAN[0]) <= set(per_language.kept_ids)
    assert {s["language"]: s["rule"].split("(")[1] for s in per_language.sources} == \
        {"en": "≥ 2 sentences)", "de": "≥ 1 sentences)"}
    # pooled into one corpus, the German sentence (1 of 41 < 5 %) would lose its own sub-words
    pooled = plan_vocab(src, english + german, min_sentence_freq=0.05).plan
    assert not _pieces(tok, GERMAN[0]) <= set(pooled.kept_ids)


def test_threshold_that_keeps_nothing_is_refused(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    with pytest.raises(PolydistillError, match=r"--min-sentence-freq 1 keeps no sub-word of custom corpus "
                                               r"\(the most frequent occurs in \d of 4 sentences"):
        vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=1.0)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ coverage
def _hand_tokenizer():
    """WordPiece over a fixed vocabulary, so every segmentation can be worked out by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##a", "##b", "##c", "ab", "cab"]
    raw = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def test_coverage_hand_computed():
    tok = _hand_tokenizer()
    ids = tok.convert_tokens_to_ids
    # "ab cab" -> [ab] [cab]; "abc ca" -> [ab ##c] [c ##a] (greedy longest match): 4 words, 6 tokens
    enc = encode_heldout(tok, HeldoutText(["ab cab", "abc ca", "   "]), "x")
    assert enc.token_ids.tolist() == ids(["ab", "cab", "ab", "##c", "c", "##a"])
    assert enc.word_starts.tolist() == [0, 1, 2, 4] and enc.sentence_words.tolist() == [0, 2]
    mask = np.zeros(len(tok), dtype=bool)
    mask[ids(["ab", "c", "##a"])] = True  # "cab" and "##c" removed
    # unchanged words: [ab] (1 token) and [c ##a] (2 tokens) -> 3 of 6 tokens; no sentence intact;
    # ids kept: ab, ab, c, ##a -> 4 of 6
    assert coverage(enc, mask) == {"sentences": 2, "tokens": 6, "token_coverage": 0.5, "sentence_coverage": 0.0,
                                   "ids_kept": pytest.approx(4 / 6)}
    mask[ids(["cab", "##c"])] = True
    assert coverage(enc, mask)["sentence_coverage"] == 1.0
    # targeting: candidates ranked ab, c, ##a, cab; "##c" is no candidate -> word ranks 0, 3, inf, 2
    rank = np.full(len(tok), np.inf)
    rank[ids(["ab", "c", "##a", "cab"])] = [0, 1, 2, 3]
    assert rank_cut(enc, rank, 0.5) == (3, pytest.approx(4 / 6))  # ab + [c ##a] = 3 tokens: ranks 0..2
    assert rank_cut(enc, rank, 0.6)[0] == 4  # needs 4 tokens: cab as well
    assert rank_cut(enc, rank, 0.7)[0] is None  # [ab ##c] is unreachable: at most 4/6
    rank[ids(["##c"])] = -1  # always kept
    assert rank_cut(enc, rank, 1.0)[0] == 4


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta"])
def test_planned_coverage_matches_the_reduced_tokenizer(tmp_path, arch):
    src = make_model_dir(tmp_path, arch)
    held = HeldoutText(CORPUS + ["hello world", "wake me up", "jazz in paris"], "text", "mixed")
    result = plan_vocab(src, ENGLISH, heldout=[held], min_sentence_freq=0.0)
    row = result.report["languages"]["text"]
    # a sentence is predicted unchanged iff all its pieces were kept; the real reduced tokenizer agrees
    assert row["sentence_coverage"] == pytest.approx(row["sentences_identical_measured"])
    assert 0 < row["sentence_coverage"] < 1 and row["token_coverage"] <= row["ids_kept"]
    assert row["tokens_per_sentence_after"] >= row["tokens_per_sentence_before"]
    assert result.report["params_after"] < result.report["params_before"]


def test_report_parameters_match_the_written_model(tmp_path):
    src = make_model_dir(tmp_path, "xlm-roberta")
    result = vocab_reduce(src, ENGLISH, tmp_path / "out", min_sentence_freq=0.0)
    rec = result.provenance["vocab_reduction"]
    assert result.report["params_after"] == rec["params_after"]
    assert result.report["params_before"] == rec["params_before"]
    assert result.report["vocab_after"] == rec["vocab_after"]


def test_min_coverage_targets_each_language(tmp_path):
    src = make_model_dir(tmp_path, "xlm-roberta")
    sources = [TextSource(ENGLISH * 3, "en", "en corpus"), TextSource(GERMAN * 3, "de", "de corpus"),
               wordfreq_source("de", frequencies=FAKE_LISTS)]
    heldout = [HeldoutText(["hello world", "play jazz music", "wake me up"], "en", "en held-out"),
               HeldoutText(["hallo welt", "das ist musik"], "de", "de held-out")]

    def sources_again():
        return [TextSource(ENGLISH * 3, "en", "en corpus"), TextSource(GERMAN * 3, "de", "de corpus"), sources[2]]

    full = plan_vocab(src, sources=sources_again(), heldout=heldout, min_sentence_freq=0.0)
    targeted = plan_vocab(src, sources=sources, heldout=heldout, min_coverage=0.8)
    for key in ("en", "de"):
        assert targeted.report["languages"][key]["token_coverage"] >= 0.8
        selection = targeted.plan.languages[key]
        assert selection["rank_cut"] >= 0 and selection["equivalent_thresholds"]
    assert targeted.plan.new_size <= full.plan.new_size
    # the smallest: one rank fewer for English would miss the target on its own
    with pytest.raises(PolydistillError, match=r"The sources of en reach at most .* token coverage on en held-out"):
        plan_vocab(src, sources=[TextSource(["zzz qqq"], "en", "en corpus")],
                   heldout=[HeldoutText(["hello world"], "en", "en held-out")], min_coverage=0.99)
    with pytest.raises(PolydistillError, match="needs held-out text for every language; de has none"):
        plan_vocab(src, sources=[TextSource(GERMAN, "de", "de")],
                   heldout=[HeldoutText(["hello"], "en", "en")], min_coverage=0.9)


def test_min_coverage_is_the_smallest_prefix(tmp_path):
    src = make_model_dir(tmp_path, "bert")
    heldout = [HeldoutText(["hello world this is a test", "wake me up at seven"], "en", "held")]
    plan = plan_vocab(src, sources=[TextSource(ENGLISH, "en", "en")], heldout=heldout, min_coverage=0.75).plan
    cut = plan.languages["en"]["rank_cut"]
    assert cut > 0
    # re-planning with a per-source cap one below the cut (the same ranking) misses the target
    smaller = plan_vocab(src, sources=[TextSource(ENGLISH, "en", "en")], heldout=heldout, min_sentence_freq=0.0,
                         max_tokens=cut - 1)
    assert smaller.report["languages"]["en"]["token_coverage"] < 0.75
    same = plan_vocab(src, sources=[TextSource(ENGLISH, "en", "en")], heldout=heldout, min_sentence_freq=0.0,
                      max_tokens=cut)
    assert same.report["languages"]["en"]["token_coverage"] >= 0.75


@pytest.mark.slow
def test_real_e5_plan_with_wordfreq(e5_dir, shared_data):
    """Real check: e5 + MASSIVE nl-NL train + wordfreq nl keeps ≥ 99 % of the nl-NL test tokens unchanged
    with ≤ 30 % of the parameters, and the e5 prompt prefixes are kept."""
    pytest.importorskip("wordfreq")
    from polydistill.vocab.sources import dataset_sources

    sources, heldout = dataset_sources("massive", "nl-NL", str(shared_data), ("train",), "test")
    result = plan_vocab(e5_dir, sources=[*sources, wordfreq_source("nl-NL")], heldout=heldout)
    row = result.report["languages"]["nl"]
    assert row["token_coverage"] >= 0.99 and row["sentence_coverage"] >= 0.95
    assert row["sentence_coverage"] == pytest.approx(row["sentences_identical_measured"])
    assert result.report["params_share"] <= 0.30
    assert set(result.plan.keep_text) >= {"query: ", "passage: "}
    tok = result.tokenizer
    assert _pieces(tok, "query: ") | _pieces(tok, "passage: ") <= set(result.plan.kept_ids)

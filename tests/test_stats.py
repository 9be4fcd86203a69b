"""Bootstrap statistics of the grid report (reporting/stats.py): golden checks on tiny synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import f1_score

from polydistill.errors import PolydistillError
from polydistill.experiments.store import pack_ints, unpack_ints
from polydistill.reporting import stats
from polydistill.reporting.stats import LanguagePredictions, examples_checksum

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def lang(code: str, gold, pred, texts=None) -> LanguagePredictions:
    texts = texts or [f"{code} example {i}" for i in range(len(gold))]
    return LanguagePredictions(code, examples_checksum(texts), gold, pred)


def classification(gold_by_lang: dict[str, list[int]], pred_by_lang: dict[str, list[int]], label="run",
                   num_labels=4) -> stats.GroupExamples:
    langs = [lang(c, np.array(g), np.array(pred_by_lang[c])) for c, g in gold_by_lang.items()]
    return stats.group_examples("sequence", [str(i) for i in range(num_labels)], langs, label=label, group="all")


def random_task(seed=0, sizes=(40, 25, 60), num_labels=4, accuracy=0.6):
    rng = np.random.default_rng(seed)
    gold = {f"l{i}": rng.integers(0, num_labels, n).tolist() for i, n in enumerate(sizes)}
    pred = {c: [y if rng.random() < accuracy else int(rng.integers(0, num_labels)) for y in g] for c, g in gold.items()}
    return gold, pred


def random_ner(seed=0, n=30):
    """Word-level tag ids for n sentences: gold with entities, pred a noisy copy."""
    rng = np.random.default_rng(seed)
    gold, pred = [], []
    for _ in range(n):
        length = int(rng.integers(1, 9))
        row = []
        while len(row) < length:
            kind = rng.integers(0, 3)
            if kind == 0:
                row.append(0)
            else:
                b = 1 if kind == 1 else 3
                row += [b] + [b + 1] * int(rng.integers(0, 2))
        row = row[:length]
        gold.append(row)
        pred.append([t if rng.random() < 0.75 else int(rng.integers(0, len(TAGS))) for t in row])
    return gold, pred


def names(rows):
    return [[TAGS[t] for t in row] for row in rows]


def test_pack_ints_round_trips_in_the_smallest_dtype():
    for values, code in (([0, 5, 255], "u1"), ([0, 300], "u2"), ([-1, 3], "i1"), ([], "u1"), ([2**40], "i8")):
        packed = pack_ints(values)
        assert packed.startswith(code + ":")
        assert unpack_ints(packed).tolist() == list(values)
    intents = np.random.default_rng(0).integers(0, 60, 300)
    assert len(pack_ints(intents)) <= 3 + 400  # 300 intent ids: at most 400 base64 characters
    tags = [0] * 500 + [1, 2] * 5
    assert pack_ints(tags).startswith("u1z:") and len(pack_ints(tags)) < 60  # mostly O: zlib-compressed
    assert unpack_ints(pack_ints(tags)).tolist() == tags
    with pytest.raises(PolydistillError, match="unknown dtype"):
        unpack_ints("f4:AAAA")


def test_macro_f1_matches_sklearn_on_the_full_set_and_on_a_resample():
    gold, pred = random_task(1, num_labels=6)
    run = classification(gold, pred, num_labels=6)
    all_gold = np.concatenate([gold[c] for c in sorted(gold)])
    all_pred = np.concatenate([pred[c] for c in sorted(pred)])
    assert run.full() == pytest.approx(f1_score(all_gold, all_pred, average="macro", zero_division=0), abs=1e-12)
    counts = next(stats.resample_counts(run.sizes, 3, np.random.default_rng(0)))
    for row, value in zip(counts, run.scores(counts), strict=True):
        idx = np.repeat(np.arange(run.n), row.astype(int))
        assert value == pytest.approx(f1_score(all_gold[idx], all_pred[idx], average="macro", zero_division=0),
                                      abs=1e-12)


def test_ner_micro_f1_from_counts_equals_seqeval_on_the_full_set_and_on_a_resample():
    gold, pred = random_ner(2, n=40)
    counts = stats.ner_counts(gold, pred, TAGS)
    assert counts[:, 0].sum() > 10 and 0 < counts[:, 2].sum() < counts[:, 0].sum()  # a non-trivial case
    assert stats.micro_f1(counts) == pytest.approx(seqeval_f1(names(gold), names(pred), zero_division=0), abs=1e-12)
    run = stats.group_examples("token", TAGS, [lang("xx", gold[:25], pred[:25]), lang("yy", gold[25:], pred[25:])])
    assert run.full() == pytest.approx(stats.micro_f1(counts), abs=1e-12)
    weights = next(stats.resample_counts(run.sizes, 4, np.random.default_rng(3)))
    for row, value in zip(weights, run.scores(weights), strict=True):
        idx = np.repeat(np.arange(run.n), row.astype(int))
        expected = seqeval_f1(names([gold[i] for i in idx]), names([pred[i] for i in idx]), zero_division=0)
        assert value == pytest.approx(expected, abs=1e-12)
    empty = stats.ner_counts([[0, 0]], [[0, 0]], TAGS)
    assert stats.micro_f1(empty) == 0.0  # no entity anywhere: seqeval's zero_division=0


def test_stratified_resamples_keep_every_language_size_and_are_seeded():
    sizes = (5, 12, 3)
    batches = list(stats.resample_counts(sizes, 250, np.random.default_rng(7), chunk=100))
    assert [b.shape for b in batches] == [(100, 20), (100, 20), (50, 20)]
    counts = np.concatenate(batches)
    blocks = np.split(counts, np.cumsum(sizes)[:-1], axis=1)
    for size, block in zip(sizes, blocks, strict=True):
        assert (block.sum(axis=1) == size).all()  # each language keeps its size in every resample
    assert counts.std(axis=0).min() > 0  # and really resamples
    again = np.concatenate(list(stats.resample_counts(sizes, 250, np.random.default_rng(7), chunk=100)))
    assert (again == counts).all()


def test_identical_models_have_exactly_a_zero_interval():
    gold, pred = random_task(4)
    a = [classification(gold, pred, "a seed 0"), classification(gold, pred, "a seed 1")]
    b = [classification(gold, pred, "b seed 0")]
    iv = stats.paired_bootstrap(a, b, n_resamples=300, seed=1)
    assert (iv.difference, iv.low, iv.high) == (0.0, 0.0, 0.0)
    assert iv.verdict == "inconclusive" and iv.paired and (iv.seeds_a, iv.seeds_b) == (2, 1)
    assert iv.n_a == iv.n_b == 125
    ner_gold, ner_pred = random_ner(5)
    same = stats.group_examples("token", TAGS, [lang("xx", ner_gold, ner_pred)])
    iv = stats.paired_bootstrap([same], [same], n_resamples=200)
    assert (iv.difference, iv.low, iv.high) == (0.0, 0.0, 0.0)


def test_a_model_better_on_every_example_has_an_interval_above_zero():
    gold, _ = random_task(5)
    perfect = classification(gold, gold, "perfect")
    wrong = classification(gold, {c: [(y + 1) % 4 for y in g] for c, g in gold.items()}, "wrong")
    iv = stats.paired_bootstrap([perfect], [wrong], n_resamples=200)
    assert iv.difference == pytest.approx(1.0) and iv.low > 0.9 and iv.verdict == "supported"
    flipped = stats.paired_bootstrap([wrong], [perfect], n_resamples=200)
    assert flipped.high < 0 and flipped.verdict == "contradicted"
    # a small, consistent gain is detected too: B is A with 10 % of its correct answers spoiled
    gold, pred = random_task(6, sizes=(200, 200), accuracy=0.7)
    rng = np.random.default_rng(0)
    spoiled = {c: [(p + 1) % 4 if p == y and rng.random() < 0.1 else p for p, y in zip(pred[c], gold[c], strict=True)]
               for c in pred}
    iv = stats.paired_bootstrap([classification(gold, pred)], [classification(gold, spoiled)], n_resamples=500)
    assert iv.low > 0


def test_seeded_results_are_reproducible_and_the_seed_matters():
    gold, pred_a = random_task(8)
    _, pred_b = random_task(9)
    pred_b = {c: pred_b[c] for c in gold}
    a, b = [classification(gold, pred_a)], [classification(gold, pred_b)]
    first = stats.paired_bootstrap(a, b, n_resamples=400, seed=3)
    assert stats.paired_bootstrap(a, b, n_resamples=400, seed=3) == first
    other = stats.paired_bootstrap(a, b, n_resamples=400, seed=4)
    assert other.difference == first.difference and (other.low, other.high) != (first.low, first.high)
    assert first.low <= first.difference <= first.high


def test_several_seeds_average_f1_before_the_difference():
    gold, p0 = random_task(10)
    _, p1 = random_task(11)
    p1 = {c: p1[c] for c in gold}
    a = [classification(gold, p0), classification(gold, p1)]
    b = [classification(gold, gold)]
    iv = stats.paired_bootstrap(a, b, n_resamples=50)
    assert iv.difference == pytest.approx((a[0].full() + a[1].full()) / 2 - 1.0)


def test_unpaired_bootstrap_resamples_each_side_on_its_own():
    gold_seen, pred_seen = random_task(12, sizes=(50, 50), accuracy=0.9)
    gold_unseen, pred_unseen = random_task(13, sizes=(30, 30, 30), accuracy=0.3)
    seen = classification(gold_seen, pred_seen)
    unseen = classification({f"u{c}": g for c, g in gold_unseen.items()},
                            {f"u{c}": p for c, p in pred_unseen.items()})
    iv = stats.unpaired_bootstrap([seen], [unseen], n_resamples=300)
    assert not iv.paired and (iv.n_a, iv.n_b) == (100, 90)
    assert iv.difference == pytest.approx(seen.full() - unseen.full())
    assert iv.verdict == "supported"
    with pytest.raises(PolydistillError, match="test examples differ"):
        stats.paired_bootstrap([seen], [unseen])


def test_verdict_logic():
    assert stats.verdict(0.01, 0.2) == "supported"
    assert stats.verdict(-0.2, -0.01) == "contradicted"
    assert stats.verdict(-0.1, 0.1) == "inconclusive"
    assert stats.verdict(0.0, 0.0) == "inconclusive"  # identical models: nothing is claimed
    assert stats.verdict(0.0, 0.3) == "inconclusive"  # touching 0 is not excluding it


def test_pairing_refuses_different_examples_with_one_sentence():
    gold, pred = random_task(14, sizes=(10, 10))
    a = classification(gold, pred, "from-teacher tiny/tsm seed 0")
    other_text = [lang(c, np.array(g), np.array(pred[c]), texts=[f"changed {i}" for i in range(len(g))])
                  if c == "l1" else lang(c, np.array(g), np.array(pred[c])) for c, g in gold.items()]
    b = stats.group_examples("sequence", ["0", "1", "2", "3"], other_text, label="from-scratch tiny/tsm seed 0",
                             group="all")
    with pytest.raises(PolydistillError) as err:
        stats.paired_bootstrap([a], [b])
    message = str(err.value)
    assert "checksum mismatch of the l1 examples" in message and "from-scratch tiny/tsm seed 0" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    fewer = classification({"l0": gold["l0"], "l1": gold["l1"][:5]}, {"l0": pred["l0"], "l1": pred["l1"][:5]})
    with pytest.raises(PolydistillError, match="l1 has 10 vs 5 examples"):
        stats.paired_bootstrap([a], [fewer])
    relabelled = classification({c: [(y + 1) % 4 for y in g] for c, g in gold.items()}, pred)
    with pytest.raises(PolydistillError, match="different gold labels"):
        stats.paired_bootstrap([a], [relabelled])
    with pytest.raises(PolydistillError, match="at least 1"):
        stats.paired_bootstrap([a], [a], n_resamples=0)

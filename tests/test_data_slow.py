"""Slow checks against the real data in ../shared/data: counts equal SOURCE.md, partitions resolve,
the 1 % stratified MASSIVE subset keeps every intent in every locale. Run: pytest -m slow tests/test_data_slow.py"""

from __future__ import annotations

from collections import Counter

import pytest

from polydistill.data import load_task_data
from polydistill.data.languages import MASSIVE_LOCALES, MASSIVE_UNSEEN

pytestmark = pytest.mark.slow

# SOURCE.md (universal-ner): sentences per file
UNER_COUNTS = {
    "zh_gsd": (3997, 500, 500), "zh_gsdsimp": (3997, 500, 500), "hr_set": (6914, 960, 1136),
    "da_ddt": (4383, 564, 565), "en_ewt": (0, 2001, 2077), "pt_bosque": (7018, 1172, 1167),
    "sr_set": (3328, 536, 520), "sk_snk": (8483, 1060, 1061), "sv_talbanken": (4303, 504, 1219),
    "ceb_gja": (0, 0, 188), "tl_trg": (0, 0, 128), "tl_ugnayan": (0, 0, 94), "de_pud": (0, 0, 1000),
    "en_pud": (0, 0, 1000), "pt_pud": (0, 0, 1000), "ru_pud": (0, 0, 1000), "sv_pud": (0, 0, 1000),
    "zh_pud": (0, 0, 1000),
}


def per_language(data):
    return {split: Counter(ds["language"]) for split, ds in data.splits.items()}


@pytest.fixture(scope="module")
def massive_all(shared_data):
    return load_task_data("massive", "all", data_root=shared_data)


def test_massive_counts_every_locale(massive_all):
    assert massive_all.languages == list(MASSIVE_LOCALES) and len(massive_all.languages) == 52
    counts = per_language(massive_all)
    for locale in MASSIVE_LOCALES:
        assert (counts["train"][locale], counts["validation"][locale], counts["test"][locale]) == (11514, 2033, 2974)
    assert sum(len(ds) for ds in massive_all.splits.values()) == 859_092
    for locale in ("en-US", "sw-KE"):  # all 60 intents in each split of a locale
        rows = massive_all.splits["train"].filter(lambda lang, loc=locale: lang == loc, input_columns="language")
        assert len(set(rows["label"])) == 60


def test_massive_unseen_partition_resolves(shared_data):
    data = load_task_data("massive", "unseen", data_root=shared_data, purpose="evaluate")
    assert sorted(data.languages) == sorted(MASSIVE_UNSEEN) and len(data.languages) == 27
    assert len(data.splits["test"]) == 27 * 2974
    seen = load_task_data("massive", "seen", data_root=shared_data)
    assert len(seen.languages) == 25 and not set(seen.languages) & set(MASSIVE_UNSEEN)


def test_massive_one_percent_keeps_every_intent(shared_data, massive_all):
    sub = load_task_data("massive", "all", data_root=shared_data, fraction=0.01, seed=0)
    full = Counter(zip(massive_all.splits["train"]["language"], massive_all.splits["train"]["label"], strict=True))
    kept = Counter(zip(sub.splits["train"]["language"], sub.splits["train"]["label"], strict=True))
    for locale in MASSIVE_LOCALES:
        # 0.01 * 11,514 = 115 >= 60 intents: the rule keeps every intent present in the locale
        present = {y for (lang, y) in full if lang == locale}
        assert {y for (lang, y) in kept if lang == locale} == present
        n_kept = sum(c for (lang, _), c in kept.items() if lang == locale)
        assert 115 <= n_kept <= 115 + 60
    # every stratum gets max(1, round(0.01 * n))
    for key, n in full.items():
        assert kept[key] == max(1, int(0.01 * n + 0.5))


def test_tsm_counts(shared_data):
    data = load_task_data("tsm", "all", data_root=shared_data)
    assert len(data.languages) == 8
    counts = per_language(data)
    for lang in data.languages:
        assert (counts["train"][lang], counts["validation"][lang], counts["test"][lang]) == (1839, 324, 870)
    labels = Counter(data.splits["train"].filter(lambda lang: lang == "hindi", input_columns="language")["label"])
    assert labels == {0: 613, 1: 613, 2: 613}


def test_uner_counts_and_oth_mapping(shared_data):
    data = load_task_data("uner", "all,test-only", data_root=shared_data, purpose="evaluate")
    counts = per_language(data)
    for code, expected in UNER_COUNTS.items():
        assert (counts["train"][code], counts["validation"][code], counts["test"][code]) == expected, code
    hr = data.splits["train"].filter(lambda lang: lang == "hr_set", input_columns="language")
    begins = Counter(data.label_names[t] for row in hr["tags"] for t in row if data.label_names[t].startswith("B-"))
    assert begins == {"B-LOC": 3074, "B-ORG": 2755, "B-PER": 2432}  # SOURCE.md; 1003 OTH became O
    # training on the seen partition works (en_ewt train missing: a warning, not silence)
    with pytest.warns(UserWarning, match="en_ewt has no UNER v1 train file"):
        seen = load_task_data("uner", "seen", data_root=shared_data)
    assert len(seen.splits["train"]) == 3997 + 3997 + 6914 and seen.warnings


def test_uner_prerelease_only_on_request(shared_data):
    with pytest.warns(UserWarning, match="NOT UNER v1"):
        data = load_task_data("uner", "english", data_root=shared_data, allow_prerelease=True)
    assert len(data.splits["train"]) == 12543
    begins = Counter(data.label_names[t] for row in data.splits["train"]["tags"] for t in row
                     if data.label_names[t].startswith("B-"))
    assert begins == {"B-LOC": 2698, "B-ORG": 1434, "B-PER": 2873}  # SOURCE.md, after OTH/B-O -> O

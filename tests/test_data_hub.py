"""The hub path (the default without a data root), with ``datasets.load_dataset`` answered locally."""

import datasets
import pytest

from polydistill.data import load_task_data


@pytest.fixture
def fake_hub(monkeypatch):
    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        labels = datasets.ClassLabel(names=["negative", "neutral", "positive"])
        features = datasets.Features({"text": datasets.Value("string"), "label": labels})
        split = {"text": [f"{name} tweet {i}" for i in range(6)], "label": [0, 1, 2, 2, 1, 0]}
        return datasets.DatasetDict({s: datasets.Dataset.from_dict(split, features=features)
                                     for s in ("train", "validation", "test")})

    monkeypatch.delenv("POLYDISTILL_DATA_ROOT", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_tsm_loads_from_its_hub_id_per_language(fake_hub):
    data = load_task_data("cardiffnlp/tweet_sentiment_multilingual", languages="english,hindi")
    assert fake_hub == [("cardiffnlp/tweet_sentiment_multilingual", "english"),
                        ("cardiffnlp/tweet_sentiment_multilingual", "hindi")]
    assert data.name == "tsm" and data.label_names == ["negative", "neutral", "positive"]
    train = data.splits["train"]
    assert sorted(set(train["language"])) == ["english", "hindi"]
    assert train["label"][:6] == [0, 1, 2, 2, 1, 0] and len(data.splits["test"]) == 12

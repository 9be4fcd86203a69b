"""Small learnable tasks (as ``TaskData``) and tiny models for the distill/finetune tests.

Sequence: each sentence holds exactly one keyword, whose class is the label. Token: words from a
small "location" set are tagged B-LOC. Both are learnable by a 4-layer hidden-32 model in a few
dozen steps.
"""

from __future__ import annotations

import random

from factories import CORPUS, make_model
from polydistill.data.types import TaskData

KEYWORDS = {"jazz": 0, "weather": 1, "hello": 2}
SEQ_LABELS = ["music", "weather", "greeting"]
LOCATIONS = {"paris", "kitchen", "welt"}
TOKEN_LABELS = ["O", "B-LOC", "I-LOC"]
FILLER = sorted({w for line in CORPUS for w in line.split()} - set(KEYWORDS) - LOCATIONS)


def _sequence_rows(n: int, rng: random.Random) -> dict[str, list]:
    rows = {"text": [], "label": [], "language": []}
    keywords = list(KEYWORDS)
    for i in range(n):
        key = keywords[i % len(keywords)]
        words = rng.sample(FILLER, rng.randint(2, 7))
        words.insert(rng.randint(0, len(words)), key)
        rows["text"].append(" ".join(words))
        rows["label"].append(KEYWORDS[key])
        rows["language"].append("en" if i % 2 else "de")
    return rows


def _token_rows(n: int, rng: random.Random) -> dict[str, list]:
    rows = {"tokens": [], "tags": [], "language": []}
    places = sorted(LOCATIONS)
    for _ in range(n):
        words = rng.sample(FILLER, rng.randint(2, 6))
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words)), rng.choice(places))
        rows["tokens"].append(words)
        rows["tags"].append([1 if w in LOCATIONS else 0 for w in words])
        rows["language"].append("en")
    return rows


def tiny_task(task: str = "sequence", n_train: int = 96, n_dev: int = 48, seed: int = 0) -> TaskData:
    from datasets import Dataset, DatasetDict

    rng = random.Random(seed)
    make = _sequence_rows if task == "sequence" else _token_rows
    splits = DatasetDict({
        "train": Dataset.from_dict(make(n_train, rng)),
        "validation": Dataset.from_dict(make(n_dev, rng)),
        "test": Dataset.from_dict(make(n_dev, rng)),
    })
    return TaskData(
        name=f"tiny-{task}",
        task=task,
        label_names=SEQ_LABELS if task == "sequence" else TOKEN_LABELS,
        splits=splits,
        languages=sorted(set(splits["train"]["language"])),
    )


def tiny_model(data: TaskData, arch: str = "bert", seed: int = 0, **overrides):
    """A tiny random model whose head carries ``data``'s label names."""
    model, tokenizer = make_model(arch, data.task, num_labels=data.num_labels, seed=seed, **overrides)
    model.config.id2label, model.config.label2id = data.id2label, data.label2id
    return model, tokenizer


def test_tiny_tasks_are_well_formed():
    seq, tok = tiny_task("sequence"), tiny_task("token")
    assert set(seq.splits["train"]["label"]) == {0, 1, 2}
    for words, tags in zip(tok.splits["train"]["tokens"], tok.splits["train"]["tags"], strict=True):
        assert len(words) == len(tags) and 1 in tags

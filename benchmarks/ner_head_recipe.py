"""Which head recipe makes e5-small leave the all-O solution on Universal NER fast (a plain training
loop, independent of the training core): random head vs linear-probe head, with or without a larger
head learning rate. Dev F1 (seqeval) every ``eval_every`` steps on 150 sentences per seen treebank.

    python benchmarks/ner_head_recipe.py '[{"name": "probe", "head_init": "probe", "lr": 1e-4},
                                          {"name": "random", "lr": 2e-4},
                                          {"name": "random_head50", "lr": 2e-4, "head_mult": 50}]'

(the runs behind the table in docs/reproduction.md, "Fine-tuning that converges")
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

E5 = str(Path.home() / ".cache/polydistill/e5-small")
DATA_ROOT = str(Path(__file__).resolve().parents[2] / "shared/data")
MAX_LENGTH = 48


def load(max_dev: int = 150):
    from transformers import AutoTokenizer

    from polydistill.data import load_task_data
    from polydistill.data.tokenize import data_collator, tokenize_task_data

    data = load_task_data("universal-ner", languages="seen", data_root=DATA_ROOT, fraction=0.2, seed=0)
    dev, counts, keep = data.splits["validation"], {}, []
    for i, lang in enumerate(dev["language"]):  # the first max_dev sentences of each treebank
        if counts.get(lang, 0) < max_dev:
            counts[lang] = counts.get(lang, 0) + 1
            keep.append(i)
    data.splits["validation"] = dev.select(keep)
    tokenizer = AutoTokenizer.from_pretrained(E5)
    tokenized = tokenize_task_data(data, tokenizer, max_length=MAX_LENGTH)
    drop = ["language", "word_ids"]
    return data, tokenized["train"].remove_columns(drop), tokenized["validation"].remove_columns(drop), \
        data_collator("token", tokenizer)


def evaluate(model, dev, collate, label_names) -> float:
    from polydistill.evaluate.metrics import scores

    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for start in range(0, len(dev), 64):
            batch = collate([dev[j] for j in range(start, min(start + 64, len(dev)))])
            gold = batch.pop("labels")
            out = model(**batch).logits
            pad = MAX_LENGTH - out.shape[1]
            logits.append(nn.functional.pad(out, (0, 0, 0, pad)).numpy())
            labels.append(nn.functional.pad(gold, (0, pad), value=-100).numpy())
    model.train()
    return scores("token", np.concatenate(logits), np.concatenate(labels), label_names)["f1"]


def probe(model, train, collate, n: int = 1500) -> None:
    """Fit the classifier as a logistic regression on frozen last-layer features of the first n sentences."""
    from sklearn.linear_model import LogisticRegression

    model.eval()
    xs, ys = [], []
    with torch.no_grad():
        for start in range(0, min(n, len(train)), 64):
            batch = collate([train[j] for j in range(start, min(start + 64, n, len(train)))])
            gold = batch.pop("labels")
            hidden = model.base_model(**batch).last_hidden_state
            keep = gold != -100
            xs.append(hidden[keep].numpy())
            ys.append(gold[keep].numpy())
    model.train()
    x, y = np.concatenate(xs), np.concatenate(ys)
    fit = LogisticRegression(max_iter=300, C=1.0).fit(x, y)
    weight = np.zeros((model.num_labels, x.shape[1]))
    bias = np.full(model.num_labels, -10.0)
    weight[fit.classes_], bias[fit.classes_] = fit.coef_, fit.intercept_
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(weight))
        model.classifier.bias.copy_(torch.tensor(bias))


def run(data, train, dev, collate, name, head_init="random", lr=2e-4, head_mult=1.0, steps=150, eval_every=50,
        seed=0) -> dict[int, float]:
    from transformers import AutoModelForTokenClassification

    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(E5, num_labels=len(data.label_names))
    model.get_input_embeddings().weight.requires_grad_(False)
    start = time.time()
    if head_init == "probe":
        probe(model, train, collate)
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = torch.optim.AdamW([{"params": body, "lr": lr}, {"params": head, "lr": lr * head_mult}])
    generator = torch.Generator().manual_seed(seed)
    curve = {0: evaluate(model, dev, collate, data.label_names)}
    model.train()
    for step in range(1, steps + 1):
        batch = collate([train[j] for j in torch.randint(len(train), (32,), generator=generator).tolist()])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0:
            curve[step] = evaluate(model, dev, collate, data.label_names)
            print(name, step, round(float(loss), 3), round(curve[step], 3), f"{time.time() - start:.0f} s", flush=True)
    return curve


def main() -> None:
    torch.set_num_threads(2)
    data, train, dev, collate = load()
    print({"train": len(train), "validation": len(dev)}, flush=True)
    results = {cfg["name"]: run(data, train, dev, collate, **cfg) for cfg in json.loads(sys.argv[1])}
    print(json.dumps(results))


if __name__ == "__main__":
    main()

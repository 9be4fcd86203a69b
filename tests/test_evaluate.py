"""evaluate_model on tiny random models: breakdowns, baselines, label checks and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from factories import make_model
from polydistill.data import load_task_data
from polydistill.errors import PolydistillError
from polydistill.evaluate import evaluate_model
from polydistill.evaluate.baselines import majority_label, random_ner_scores
from polydistill.evaluate.evaluate import predict

FIX = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(scope="module")
def massive():
    return load_task_data("massive", "en-US,de-DE,sw-KE,cy-GB", data_root=FIX, purpose="evaluate")


@pytest.fixture(scope="module")
def uner():
    return load_task_data("uner", "da_ddt,hr_set,de_pud", data_root=FIX, purpose="evaluate")


def labelled_model(task, label_names, seed=0, arch="bert"):
    model, tok = make_model(arch, task, num_labels=len(label_names), seed=seed)
    model.config.id2label = dict(enumerate(label_names))
    model.config.label2id = {n: i for i, n in enumerate(label_names)}
    return model, tok


def test_classification_report_is_consistent(massive):
    model, tok = labelled_model("sequence", massive.label_names)
    report = evaluate_model(model, tok, massive, split="test", max_length=32)
    assert report.languages == ["cy-GB", "de-DE", "en-US", "sw-KE"]
    per = report.per_language
    assert sum(s["support"] for s in per.values()) == report.overall["support"] == 16
    weighted = sum(s["accuracy"] * s["support"] for s in per.values()) / report.overall["support"]
    assert weighted == pytest.approx(report.overall["accuracy"])
    # the overall F1 is sklearn's macro-F1 on the pooled predictions
    from sklearn.metrics import f1_score

    trues, preds, _ = predict(model, tok, massive, "test", max_length=32)
    assert report.overall["f1"] == pytest.approx(f1_score(trues, preds, average="macro"))
    # groups from Table 11: sw-KE and cy-GB are unseen, en-US and de-DE seen
    assert report.groups["unseen"]["languages"] == ["cy-GB", "sw-KE"]
    assert report.groups["seen"]["support"] == 8
    majority = report.baselines["majority"]
    assert majority["from"] == "train" and majority["label"] in massive.label_names
    # 4 intents equally frequent in train: ties go to the smallest id; 1 of 4 test examples per locale
    assert majority["overall"]["accuracy"] == pytest.approx(0.25)
    assert json.loads(json.dumps(report.to_dict()))["overall"]["support"] == 16


def test_language_filter_and_partitions(massive):
    model, tok = labelled_model("sequence", massive.label_names)
    report = evaluate_model(model, tok, massive, languages="unseen", max_length=32)
    assert report.languages == ["cy-GB", "sw-KE"] and report.overall["support"] == 8
    assert report.groups == {}  # a single group equals the overall
    with pytest.raises(PolydistillError, match="Unknown language 'fr-FR'"):
        evaluate_model(model, tok, massive, languages="fr-FR")


def test_permuted_label_order_is_remapped(massive):
    names = massive.label_names
    model, tok = labelled_model("sequence", names)
    base = evaluate_model(model, tok, massive, max_length=32)
    perm = list(reversed(range(len(names))))
    permuted, _ = labelled_model("sequence", [names[i] for i in perm])
    permuted.load_state_dict(model.state_dict())
    with torch.no_grad():
        permuted.classifier.weight.copy_(model.classifier.weight[perm])
        permuted.classifier.bias.copy_(model.classifier.bias[perm])
    assert evaluate_model(permuted, tok, massive, max_length=32).overall == base.overall


def test_label_set_and_head_mismatch(massive, uner):
    model, tok = make_model("bert", "sequence", num_labels=60)  # LABEL_A ... names
    with pytest.raises(PolydistillError, match="not the dataset's 60 labels"):
        evaluate_model(model, tok, massive)
    token_model, tok = labelled_model("token", massive.label_names)
    with pytest.raises(PolydistillError, match="'token' head but massive is a 'sequence' task"):
        evaluate_model(token_model, tok, massive)
    model, tok = labelled_model("sequence", massive.label_names)
    with pytest.raises(PolydistillError, match="Split 'dev' does not exist"):
        evaluate_model(model, tok, massive, split="dev")


def test_ner_report_and_random_baseline(uner):
    model, tok = labelled_model("token", uner.label_names, arch="xlm-roberta")
    report = evaluate_model(model, tok, uner, split="test", max_length=64, random_runs=5)
    assert report.task == "token" and set(report.per_language) == {"da_ddt", "hr_set", "de_pud"}
    assert report.overall["tokens"] == sum(len(t) for t in uner.splits["test"]["tokens"])
    weighted = sum(s["accuracy"] * s["tokens"] for s in report.per_language.values()) / report.overall["tokens"]
    assert weighted == pytest.approx(report.overall["accuracy"])
    assert report.groups["test-only"]["languages"] == ["de_pud"]
    random = report.baselines["random"]
    assert random["runs"] == 5 and 0 <= random["overall"]["f1"] < 0.5


def test_random_ner_baseline_matches_its_definition():
    names = ["O", "B-PER", "I-PER"]
    truth = [["B-PER", "I-PER", "O", "O"], ["O", "B-PER"]] * 20
    a = random_ner_scores(truth, names, runs=30)
    assert a == random_ner_scores(truth, names, runs=30)  # deterministic
    assert a["runs"] == 30 and 0 < a["f1"] < 1 and a["f1_std"] > 0
    # uniformly random tags: about a third of the words right
    assert abs(a["accuracy"] - 1 / 3) < 0.05
    assert majority_label([2, 1, 1, 2, 0]) == 1
    with pytest.raises(PolydistillError):
        majority_label([])


def test_trained_model_beats_the_majority_baseline(massive):
    """A tiny model whose head is fitted on the test utterances: the report's accuracy equals a
    direct forward pass's, beats the majority baseline, and per-language accuracies average back."""
    from transformers import AutoModelForSequenceClassification

    from factories import make_config, make_wordpiece_tokenizer
    from polydistill.data.tokenize import data_collator, tokenize_task_data

    tok = make_wordpiece_tokenizer(corpus=list(massive.splits["test"]["text"]), vocab_size=400)
    config = make_config("bert", tok, num_labels=massive.num_labels, initializer_range=0.5)  # distinct features
    config.id2label, config.label2id = massive.id2label, massive.label2id
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    encoded = tokenize_task_data(massive, tok, max_length=32)["test"]
    batch = data_collator("sequence", tok)([encoded[i] for i in range(len(encoded))])
    labels = batch.pop("labels")
    with torch.no_grad():  # fit only the head on fixed features, by least squares: fast and deterministic
        features = model.bert(**batch).pooler_output
        inputs = torch.cat([features, torch.ones(len(features), 1)], dim=1)
        targets = 10.0 * torch.nn.functional.one_hot(labels, massive.num_labels).float()
        solution = torch.linalg.lstsq(inputs, targets).solution
        model.classifier.weight.copy_(solution[:-1].T)
        model.classifier.bias.copy_(solution[-1])
    with torch.no_grad():
        direct = (model(**batch).logits.argmax(-1) == labels).float().mean().item()
    report = evaluate_model(model, tok, massive, max_length=32)
    assert report.overall["accuracy"] == pytest.approx(direct)
    # the tokenizer trainer is not bit-reproducible across processes, so leave room below a perfect fit
    assert report.overall["accuracy"] > 0.6 > report.baselines["majority"]["overall"]["accuracy"]
    assert np.isclose(sum(s["accuracy"] * s["support"] for s in report.per_language.values()) / 16,
                      report.overall["accuracy"])


def test_predict_returns_results_in_data_order(massive, uner):
    model, tok = labelled_model("sequence", massive.label_names)
    trues, preds, langs = predict(model, tok, massive, "test", batch_size=3, max_length=32)
    assert trues == massive.splits["test"]["label"] and langs == massive.splits["test"]["language"]
    assert len(preds) == len(trues)
    model, tok = labelled_model("token", uner.label_names)
    trues, preds, _ = predict(model, tok, uner, "test", batch_size=2, max_length=8)  # short: words get cut
    assert trues == uner.splits["test"]["tags"]
    assert [len(p) for p in preds] == [len(t) for t in trues]
    # words beyond max_length are predicted O (id 0), not dropped
    long_row = max(range(len(trues)), key=lambda i: len(trues[i]))
    assert preds[long_row][-1] == 0


def test_groups_come_from_the_models_training_record(tmp_path):
    """A model trained on all languages reports what it was trained on, not the paper's partition."""
    import json

    from polydistill.distill.finetune import finetune
    from polydistill.distill.settings import TrainSettings
    from polydistill.evaluate import evaluate_model
    from test_distill_tasks import tiny_model, tiny_task

    data = tiny_task("sequence", n_train=16, n_dev=8)  # languages de and en
    model, tokenizer = tiny_model(data)
    trained_on_de = data.splits["train"].filter(lambda lang: lang == "de", input_columns="language")
    de_only = type(data)(name=data.name, task=data.task, label_names=data.label_names, languages=["de"],
                         splits={**data.splits, "train": trained_on_de,
                                 "validation": data.splits["validation"].filter(lambda lang: lang == "de",
                                                                                input_columns="language")})
    result = finetune(model, de_only, TrainSettings(output_dir=tmp_path / "m", max_steps=1, eval_steps=1,
                                                    batch_size=8), tokenizer=tokenizer)
    assert json.loads((result.output_dir / "run.json").read_text())["data"]["languages"] == ["de"]
    report = evaluate_model(result.output_dir, None, data, split="test")
    assert report.groups_from == "training record"
    assert report.groups["seen"]["languages"] == ["de"] and report.groups["unseen"]["languages"] == ["en"]

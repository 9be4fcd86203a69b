"""Importance-based selective weight copy on tiny random models (fast, offline)."""

from __future__ import annotations

import copy

import pytest
import torch

from factories import CORPUS, make_model
from polydistill.errors import PolydistillError
from polydistill.student.build import build_student
from polydistill.student.importance import (
    CalibrationSet,
    calibration_from_task_data,
    importance_layers,
    importance_plan,
    layer_importance,
    score_importance,
    top_k,
)
from polydistill.student.selection import uniform_plan

HEAD_SIZE = 8  # factories: hidden 32, 4 heads


def _batch(tokenizer, task: str, seed: int = 0) -> dict[str, torch.Tensor]:
    enc = dict(tokenizer(CORPUS, padding=True, return_tensors="pt"))
    gen = torch.Generator().manual_seed(seed)
    if task == "sequence":
        enc["labels"] = torch.randint(0, 3, (len(CORPUS),), generator=gen)
    elif task == "token":
        labels = torch.randint(0, 3, enc["input_ids"].shape, generator=gen)
        enc["labels"] = labels.masked_fill(enc["attention_mask"] == 0, -100)
    return enc


def _calibration(tokenizer, task: str) -> CalibrationSet:
    return CalibrationSet([_batch(tokenizer, task, seed=0), _batch(tokenizer, task, seed=1)])


@pytest.fixture(scope="module")
def bert():
    return make_model("bert", "sequence")


def test_planted_ffn_unit_and_head_rank_first(bert):
    model, tokenizer = copy.deepcopy(bert[0]), bert[1]
    layer = model.bert.encoder.layer[2]
    with torch.no_grad():  # FFN unit 17 of layer 2 and head 1 of layer 2 dominate what the layer writes
        layer.intermediate.dense.weight[17] *= 6
        layer.output.dense.weight[:, 17] *= 20
        cols = slice(1 * HEAD_SIZE, 2 * HEAD_SIZE)
        layer.attention.self.value.weight[cols] *= 6
        layer.attention.output.dense.weight[:, cols] *= 20
    scores = score_importance(model, _calibration(tokenizer, "sequence"))
    assert scores.criterion == "taylor"
    assert top_k(scores.intermediate[2], 1) == [17]
    assert top_k(scores.heads[2], 1) == [1]
    # an unplanted layer has no such outlier at those positions
    assert top_k(scores.intermediate[0], 1) != [17] or top_k(scores.heads[0], 1) != [1]


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta", "deberta-v2", "electra"])
def test_planted_hidden_dimension_ranks_first(arch):
    model, tokenizer = make_model(arch, "sequence")
    d = 13
    with torch.no_grad():  # residual dimension 13 is amplified at every LayerNorm of the stream
        for name, p in model.named_parameters():
            if "LayerNorm" in name and p.shape == (32,):
                p[d] *= 8
    scores = score_importance(model, _calibration(tokenizer, "sequence"))
    assert top_k(scores.hidden(), 1) == [d]
    plan = importance_plan(model, hidden=16, intermediate=32, teacher_layers=[1, 3], scores=scores)
    assert d in plan.hidden


def test_planted_head_dimension_ranks_first(bert):
    model, tokenizer = make_model("bert", "token")
    j = 5
    with torch.no_grad():  # dimension 5 of every head carries the values
        for layer in model.bert.encoder.layer:
            rows = [h * HEAD_SIZE + j for h in range(4)]
            layer.attention.self.value.weight[rows] *= 6
            layer.attention.output.dense.weight[:, rows] *= 6
    scores = score_importance(model, _calibration(tokenizer, "token"))
    plan = importance_plan(model, hidden=16, intermediate=32, teacher_layers=[1, 3], scores=scores)
    assert len(plan.head_dim) == 4 and j in plan.head_dim
    assert top_k(scores.inner.sum((0, 1)), 1) == [j]
    assert all(j in dims for layer in plan.head_dims for dims in layer)  # every head keeps its own top dims
    shared = importance_plan(model, hidden=16, intermediate=32, teacher_layers=[1, 3], scores=scores,
                             per_head_dims=False)
    assert shared.head_dims is None and shared.head_dim == plan.head_dim
    student = build_student(model, tokenizer=tokenizer, teacher_layers=[1, 3], width_plan=plan).model
    h = torch.tensor(plan.hidden)
    for i, k in enumerate([1, 3]):  # Q, K and V of a head keep the same (per-head) dimensions
        inner = torch.tensor([head * HEAD_SIZE + d for head, dims in enumerate(plan.head_dims[i]) for d in dims])
        t_att, s_att = model.bert.encoder.layer[k].attention, student.bert.encoder.layer[i].attention
        for proj in ("query", "key", "value"):
            assert torch.equal(getattr(s_att.self, proj).weight, getattr(t_att.self, proj).weight[inner][:, h])
        assert torch.equal(s_att.output.dense.weight, t_att.output.dense.weight[h][:, inner])


def test_plan_is_sorted_sized_and_copied_consistently_along_the_residual_stream(bert, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = bert
    calibration = _calibration(tokenizer, "sequence")
    plan = importance_plan(model, hidden=16, intermediate=24, heads=2, teacher_layers=[1, 3],
                           calibration=calibration)
    assert plan.method == "importance"
    assert plan.hidden != uniform_plan(model.config, 16, 24, 2, n_layers=2).hidden  # a real choice was made
    for indices in [plan.hidden, plan.head_dim, *plan.intermediate, *plan.heads]:
        assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert (len(plan.hidden), len(plan.intermediate[0]), len(plan.heads[0]), len(plan.head_dim)) == (16, 24, 2, 8)
    assert "taylor" in plan.details["criterion"] and plan.details["calibration_examples"] == 2 * len(CORPUS)

    built = build_student(model, tmp_path / "student", tokenizer=tokenizer, teacher_layers=[1, 3], width_plan=plan)
    student, h = built.model, torch.tensor(plan.hidden)
    t_emb, s_emb = model.bert.embeddings, student.bert.embeddings
    assert torch.equal(s_emb.word_embeddings.weight, t_emb.word_embeddings.weight[:, h])
    assert torch.equal(s_emb.LayerNorm.weight, t_emb.LayerNorm.weight[h])
    for i, k in enumerate([1, 3]):
        t_layer, s_layer = model.bert.encoder.layer[k], student.bert.encoder.layer[i]
        inner = torch.tensor(plan.inner(i, HEAD_SIZE))
        ffn = torch.tensor(plan.intermediate[i])
        assert torch.equal(s_layer.attention.self.query.weight, t_layer.attention.self.query.weight[inner][:, h])
        assert torch.equal(s_layer.attention.output.dense.weight,
                           t_layer.attention.output.dense.weight[h][:, inner])
        assert torch.equal(s_layer.attention.output.LayerNorm.bias, t_layer.attention.output.LayerNorm.bias[h])
        assert torch.equal(s_layer.intermediate.dense.weight, t_layer.intermediate.dense.weight[ffn][:, h])
        assert torch.equal(s_layer.output.dense.weight, t_layer.output.dense.weight[h][:, ffn])
        assert torch.equal(s_layer.output.LayerNorm.weight, t_layer.output.LayerNorm.weight[h])
    assert torch.equal(student.classifier.weight, model.classifier.weight[:, h])

    # The student is an ordinary checkpoint: the Auto classes load it and reproduce its outputs.
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    batch = {k: v for k, v in calibration.batches[0].items() if k != "labels"}
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, student(**batch).logits, atol=1e-5)
    width = built.provenance["width"]
    assert width["method"] == "importance" and width["indices"]["hidden"] == plan.hidden
    assert "taylor" in width["criterion"]


def test_calibration_subset_and_plan_are_deterministic_under_a_seed(bert):
    import datasets

    from polydistill.data.types import TaskData

    model, tokenizer = bert
    rows = {"text": CORPUS * 3, "label": [i % 3 for i in range(30)], "language": ["xx"] * 30}
    data = TaskData(name="toy", task="sequence", label_names=["a", "b", "c"],
                    splits=datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}), languages=["xx"])
    plans = []
    for seed in (3, 3, 4):
        calibration = calibration_from_task_data(data, tokenizer, size=12, seed=seed, batch_size=4)
        assert calibration.num_examples == 12 and calibration.description["seed"] == seed
        plans.append(importance_plan(model, hidden=16, intermediate=32, teacher_layers=[0, 2],
                                     calibration=calibration, seed=seed))
    assert plans[0].hidden == plans[1].hidden and plans[0].intermediate == plans[1].intermediate
    assert plans[0].head_dim == plans[1].head_dim
    assert plans[0].details["calibration"] == plans[1].details["calibration"] != plans[2].details["calibration"]


def test_bare_encoder_falls_back_to_activation_magnitude():
    model, tokenizer = make_model("xlm-roberta", "base")
    layer = model.encoder.layer[1]  # a bare encoder is its own backbone
    with torch.no_grad():
        layer.intermediate.dense.bias[40] += 10  # unit 40 of layer 1 is always strongly active
    calibration = _calibration(tokenizer, "base")
    scores = score_importance(model, calibration)
    assert scores.criterion == "activation"
    assert top_k(scores.intermediate[1], 1) == [40]
    plan = importance_plan(model, hidden=16, intermediate=32, teacher_layers=[0, 1], scores=scores)
    assert "activation" in plan.details["criterion"] and 40 in plan.intermediate[1]
    with pytest.raises(PolydistillError, match="task head"):
        score_importance(model, calibration, criterion="taylor")


@pytest.mark.parametrize("task", ["sequence", "base"])
def test_layer_importance_drops_layers_that_do_nothing(task):
    from polydistill.architectures import get_adapter

    model, tokenizer = make_model("bert", task)
    layers = get_adapter(model).layers(model)
    with torch.no_grad():  # layers 0 and 2 write nothing into the residual stream: LN(x + 0) = x
        for k in (0, 2):
            for linear in (layers[k].attention.output.dense, layers[k].output.dense):
                linear.weight.zero_()
                linear.bias.zero_()
    calibration = _calibration(tokenizer, task)
    if task == "sequence":  # a confident teacher that is right on its labels: real layers matter
        with torch.no_grad():
            model.classifier.weight *= 50
            for batch in calibration.batches:
                batch["labels"] = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.argmax(-1)
    assert importance_layers(model, 2, calibration) == [1, 3]
    selection = layer_importance(model, 2, calibration)
    assert selection.criterion == ("task-loss" if task == "sequence" else "representation")
    assert sorted(step["removed"] for step in selection.trace) == [0, 2]
    assert len(layers) == 4 and get_adapter(model).layers(model) is layers  # the teacher is restored


def test_greedy_step_matches_exhaustive_search(bert):
    from torch import nn

    model, tokenizer = bert
    calibration = _calibration(tokenizer, "sequence")
    chosen = importance_layers(model, 3, calibration)
    layers = model.bert.encoder.layer
    losses = {}
    with torch.no_grad():  # the loss of every 3-layer copy, measured independently
        for drop in range(4):
            model.bert.encoder.layer = nn.ModuleList([layers[k] for k in range(4) if k != drop])
            losses[drop] = sum(float(model(**b).loss) * len(b["labels"]) for b in calibration.batches)
    model.bert.encoder.layer = layers
    best = min(losses, key=lambda k: (losses[k], k))
    assert chosen == [k for k in range(4) if k != best]
    assert layer_importance(model, 4, calibration).trace == []


def test_missing_calibration_is_a_clear_error(bert):
    model, tokenizer = bert
    with pytest.raises(PolydistillError, match="calibration"):
        importance_plan(model, hidden=16)
    with pytest.raises(PolydistillError, match="calibration"):
        build_student(model, tokenizer=tokenizer, layers=2, hidden=16, width_select="importance")

"""A freshly initialised task head that converges fast: linear-probe initialisation and its own
learning rate.

A new head (a base checkpoint fine-tuned for the first time, or a from-base / from-scratch student)
starts random; with ~11 % entity tokens a random NER head stays at the all-``O`` solution for hundreds
of CPU steps (measured: docs/reproduction.md, "Fine-tuning that converges"). Two remedies:

- ``head_init="probe"`` (LP-FT, Kumar et al. 2022): before training, fit the head's output layer as
  a multinomial logistic regression (scikit-learn) on the *frozen* model's features of up to
  ``PROBE_EXAMPLES`` training examples (the exact input of that layer: the pooled or token vectors),
  then fine-tune everything from there. A convex fit, seconds on cached features; also reported to
  preserve out-of-distribution (here: cross-lingual) skill. Only on pretrained features: a
  from-scratch student's features are random, so its head stays random (as in the paper's rows).
- ``head_lr_multiplier``: the head's parameters train at ``learning_rate × multiplier``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from polydistill.architectures import get_adapter
from polydistill.data.types import IGNORE_INDEX
from polydistill.distill.checks import classifier_output_layer

PROBE_EXAMPLES = 2048  # training examples whose features fit the probe
PROBE_POSITIONS = 50_000  # at most this many token positions (NER) enter the fit


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The task head's own parameters (the classifier; not a pretrained pooler)."""
    classifier = get_adapter(model).head(model).get("classifier")
    return [p for p in classifier.parameters() if p.requires_grad] if classifier is not None else []


def output_layer(model: nn.Module) -> nn.Linear:
    """The Linear that produces the logits (``classifier`` or ``classifier.out_proj``)."""
    layer = classifier_output_layer(model)
    if layer is None:
        raise ValueError(f"{type(model).__name__} has no Linear producing num_labels outputs")
    return layer


def _features(model: nn.Module, dataset, collator, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the output layer and their labels, for up to ``limit`` examples (eval mode, no dropout)."""
    layer = output_layer(model)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].detach()))
    order = np.random.default_rng(seed).permutation(len(dataset))[:limit].tolist()
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                batch = collator([dataset[i] for i in order[start:start + 64]])
                labels = batch.pop("labels")
                captured.clear()
                model(**{k: v.to(device) for k, v in batch.items()})
                x = captured[-1].float().cpu()
                if x.dim() == 3:  # token classification: labelled positions only
                    keep = labels != IGNORE_INDEX
                    x, labels = x[keep], labels[keep]
                xs.append(x.numpy())
                ys.append(labels.numpy())
    finally:
        handle.remove()
        model.train(was_training)
    features, targets = np.concatenate(xs), np.concatenate(ys)
    if len(targets) > PROBE_POSITIONS:
        pick = np.random.default_rng(seed).permutation(len(targets))[:PROBE_POSITIONS]
        features, targets = features[pick], targets[pick]
    return features, targets


def probe_head(model: nn.Module, dataset, collator, seed: int = 0, limit: int = PROBE_EXAMPLES) -> dict[str, Any]:
    """Fit the output layer of ``model``'s head as a logistic regression on frozen features; the
    weights are copied into the layer. Returns a record (examples, classes seen, train accuracy, time)."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    layer = output_layer(model)
    x, y = _features(model, dataset, collator, limit, seed)
    classes = np.unique(y)
    record: dict[str, Any] = {"method": "probe", "examples": min(limit, len(dataset)), "positions": int(len(y)),
                              "classes_seen": int(len(classes)), "num_labels": int(layer.out_features)}
    if len(classes) < 2:  # nothing to separate: keep the random head
        record["skipped"] = "fewer than two classes in the probe's data"
        return record
    # raw features, L2 penalty C=1 in their own scale (the setting measured on UNER): the weights stay in
    # proportion to the features, so a body with tiny feature variance does not get a huge head
    probe = LogisticRegression(max_iter=300, C=1.0, random_state=seed).fit(x, y)
    weight = np.zeros((layer.out_features, x.shape[1]))
    bias = np.full(layer.out_features, float(probe.intercept_.min()) - 5.0)  # unseen classes: very unlikely
    coef, intercept = probe.coef_, probe.intercept_
    if len(classes) == 2:  # scikit-learn's binary form: one row for the positive class
        coef, intercept = np.stack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[classes], bias[classes] = coef, intercept
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    record.update(train_accuracy=round(float(probe.score(x, y)), 4),
                  seconds=round(time.perf_counter() - start, 1))
    return record

"""Importance scores: how much each hidden dimension, FFN unit, head and head dimension of a teacher matters.

:func:`score_importance` measures every element of the teacher on a calibration set
(:mod:`~polydistill.student.calibration`) and returns :class:`ImportanceScores`; the width plan
(:mod:`~polydistill.student.importance_plan`) keeps the top-scoring ones (:func:`top_k`). Where a
tensor sits (layer list, attention / FFN output projections, head size) comes from the
architecture adapter, and which dimension of a tensor belongs to which element from its axis rules.

Criterion (``taylor``, for a teacher with a task head): first-order Taylor importance of the
teacher's own task loss (cross-entropy on the gold labels; the teacher is fine-tuned), one
forward + backward pass per calibration batch, the absolute value taken per batch so that
gradients of opposite sign in different batches do not cancel at a converged teacher:

- **hidden (residual) dimension d**: Σ |w·∂L/∂w| over every weight the student keeps or drops with
  d (embeddings, every LayerNorm, Q/K/V inputs, attention and FFN outputs, pooler and classifier),
  using the student engineer's adapter axis rules, so the ONE index set kept everywhere is scored by
  everything that uses it. Only the embeddings, the head and the copied teacher layers count.
- **FFN unit i of layer l** and **attention head h of layer l**: the gate gradient of Michel et al.
  (2019): a gate m on the unit's / head's output has ∂L/∂m = Σ W_out[:, i]·∂L/∂W_out[:, i] (the
  output projection's columns of that unit / head), so |∂L/∂m| is read from the same backward pass.
- **head dimension j of head h** (heads keep their count and lose head dimensions by default,
  SPEC): Σ |w·∂L/∂w| over the Q/K/V rows and attention-output columns at (h, j); each kept head
  keeps its own top dimensions (the same set for its Q, K and V, so Q·K and V·W_O stay aligned).
  A shared set for all heads (``per_head_dims=False``) is barely informative: head dimensions are
  interchangeable across heads, and their summed scores come out nearly flat.

Criterion ``activation`` (a bare encoder without a task head has no task loss): mean absolute
activation per hidden dimension (embedding output and layer outputs), FFN unit and head dimension,
and the mean L2 norm of each head's context vector; one forward pass.

The model runs in eval mode (no dropout), so the scores are deterministic.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from polydistill.architectures import ArchitectureAdapter, get_adapter, task_of
from polydistill.errors import require
from polydistill.student.calibration import CalibrationSet, as_calibration, model_inputs

CRITERIA = ("auto", "taylor", "activation")


@dataclass
class ImportanceScores:
    """Per-element importance of one teacher on one calibration set (larger = more important).

    hidden_embeddings / hidden_head: [H] contributions of the embeddings (plus encoder-level shared
    tensors such as DeBERTa's relative embeddings) and of the task head; hidden_layers: [L, H] per
    teacher layer; intermediate: [L, I]; heads: [L, n_heads]; inner: [L, n_heads, head_size].
    """

    criterion: str
    hidden_embeddings: torch.Tensor
    hidden_layers: torch.Tensor
    hidden_head: torch.Tensor
    intermediate: torch.Tensor
    heads: torch.Tensor
    inner: torch.Tensor
    num_examples: int
    seconds: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def hidden(self, teacher_layers: Sequence[int] | None = None) -> torch.Tensor:
        """Residual-dimension scores counting the embeddings, the head and ``teacher_layers``."""
        layers = range(self.hidden_layers.shape[0]) if teacher_layers is None else list(teacher_layers)
        return self.hidden_embeddings + self.hidden_head + self.hidden_layers[list(layers)].sum(0)


def top_k(scores: torch.Tensor, k: int) -> list[int]:
    """Indices of the k largest scores (ties: lower index first), sorted ascending."""
    values = scores.tolist()
    order = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return sorted(order[:k])


def _layer_prefix(model: nn.Module, adapter: ArchitectureAdapter) -> str:
    target = adapter.layers(model)
    for name, module in model.named_modules():
        if module is target:
            return name
    raise RuntimeError("the adapter's layer list is not inside the model")  # adapter bug


def _sizes(config, adapter: ArchitectureAdapter) -> tuple[int, int, int, int, int]:
    n_heads = adapter.num_heads(config)
    return (config.num_hidden_layers, config.hidden_size, config.intermediate_size, n_heads,
            adapter.head_size(config))


def score_importance(model, calibration, criterion: str = "auto") -> ImportanceScores:
    """Score ``model``'s hidden dimensions, FFN units, heads and head dimensions on ``calibration``.

    ``criterion``: ``taylor`` (needs a task head and labels), ``activation``, or ``auto`` (taylor
    when the model has a task head and the batches carry labels, else activation).
    """
    require(criterion in CRITERIA, f"Unknown importance criterion {criterion!r}; choose one of {', '.join(CRITERIA)}.")
    calibration = as_calibration(calibration)
    has_labels = all("labels" in b for b in calibration.batches)
    if criterion == "auto":
        criterion = "taylor" if task_of(model) != "base" and has_labels else "activation"
    if criterion == "taylor":
        require(task_of(model) != "base",
                "Taylor importance needs the teacher's task loss but the model has no task head; use the "
                "fine-tuned teacher or criterion 'activation'.")
        require(has_labels, "Taylor importance needs labelled calibration batches (a 'labels' entry).")
    was_training = model.training
    model.eval()  # no dropout: scores are deterministic
    start = time.perf_counter()
    try:
        scores = _taylor(model, calibration) if criterion == "taylor" else _activation(model, calibration)
    finally:
        model.train(was_training)
    scores.seconds = time.perf_counter() - start
    scores.calibration = dict(calibration.description)
    return scores


def _empty(config, adapter) -> dict[str, torch.Tensor]:
    n_layers, hidden, ffn, n_heads, head_size = _sizes(config, adapter)
    f64 = torch.float64
    return {"hidden_embeddings": torch.zeros(hidden, dtype=f64), "hidden_layers": torch.zeros(n_layers, hidden, dtype=f64),
            "hidden_head": torch.zeros(hidden, dtype=f64), "intermediate": torch.zeros(n_layers, ffn, dtype=f64),
            "heads": torch.zeros(n_layers, n_heads, dtype=f64),
            "inner": torch.zeros(n_layers, n_heads, head_size, dtype=f64)}


def _scores(criterion: str, num_examples: int, acc: dict[str, torch.Tensor]) -> ImportanceScores:
    """The :class:`ImportanceScores` of sums accumulated in an :func:`_empty` dict."""
    return ImportanceScores(criterion=criterion, num_examples=num_examples, seconds=0.0,
                            hidden_embeddings=acc["hidden_embeddings"], hidden_layers=acc["hidden_layers"],
                            hidden_head=acc["hidden_head"], intermediate=acc["intermediate"], heads=acc["heads"],
                            inner=acc["inner"])


def _taylor(model, calibration: CalibrationSet) -> ImportanceScores:
    adapter = get_adapter(model)
    config = model.config
    _, hidden, _, n_heads, head_size = _sizes(config, adapter)
    embed_shrinks = adapter.embedding_size(config) == hidden
    layer_re = re.compile(rf"^{re.escape(_layer_prefix(model, adapter))}\.(\d+)\.")
    acc = _empty(config, adapter)

    # The word embedding is huge (250k rows for XLM-R vocabularies) and its gradient is zero outside
    # the batch's tokens: score it from the gradient of its *output* instead of a dense weight grad.
    word_module = model.get_input_embeddings()
    word_name = next(n for n, p in model.named_parameters() if p is word_module.weight)
    captured: dict[str, torch.Tensor] = {}

    def capture(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured["out"] = leaf
        return leaf

    params = dict(model.named_parameters())
    rules = {name: adapter.axis_rule(name) for name in params}
    saved_flags = {name: p.requires_grad for name, p in params.items()}
    hook = word_module.register_forward_hook(capture)
    try:
        for name, p in params.items():
            p.requires_grad_(name != word_name)
        for batch in calibration.batches:
            model.zero_grad(set_to_none=True)
            loss = model(**model_inputs(batch, with_labels=True)).loss
            loss.backward()
            with torch.no_grad():
                if embed_shrinks:
                    grad_out = captured["out"].grad
                    assert grad_out is not None  # the capture hook retains the embedding output's grad
                    acc["hidden_embeddings"] += _word_embedding_taylor(word_module.weight, batch["input_ids"], grad_out)
                for name, p in params.items():
                    if p.grad is None or rules[name] is None:
                        continue
                    _accumulate(acc, name, p, rules[name], layer_re, embed_shrinks, n_heads, head_size)
    finally:
        hook.remove()
        for name, p in params.items():
            p.requires_grad_(saved_flags[name])
        model.zero_grad(set_to_none=True)
    return _scores("taylor", calibration.num_examples, acc)


def _word_embedding_taylor(weight: torch.Tensor, input_ids: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """Σ_v |W[v, d]·∂L/∂W[v, d]| per dimension d, where ∂L/∂W[v] sums the output grads at token v."""
    ids = input_ids.reshape(-1)
    unique, inverse = torch.unique(ids, return_inverse=True)
    grad_rows = torch.zeros(len(unique), grad_out.shape[-1], dtype=grad_out.dtype)
    grad_rows.index_add_(0, inverse, grad_out.reshape(-1, grad_out.shape[-1]))
    return (weight[unique] * grad_rows).abs().sum(0).double()


def _accumulate(acc, name, p, axis_rule, layer_re, embed_shrinks, n_heads, head_size) -> None:
    """Add one parameter's |w·g| (and its gate gradient, for output projections) to the scores."""
    wg = p.detach() * p.grad
    elem = wg.abs().double()
    match = layer_re.match(name)
    layer = int(match.group(1)) if match else None
    axes = axis_rule.axes
    for dim, axis in enumerate(axes):
        if axis == "hidden" or (axis == "embed" and embed_shrinks):
            other = [d for d in range(elem.dim()) if d != dim]
            per_dim = elem.sum(dim=other) if other else elem
            if layer is not None:
                acc["hidden_layers"][layer] += per_dim
            elif axis_rule.head:
                acc["hidden_head"] += per_dim
            else:
                acc["hidden_embeddings"] += per_dim
        elif axis == "inner" and layer is not None:
            other = [d for d in range(elem.dim()) if d != dim]
            per_inner = elem.sum(dim=other) if other else elem
            acc["inner"][layer] += per_inner.reshape(n_heads, head_size)
    if layer is None or p.dim() != 2:
        return
    # Gate gradients (Michel et al. 2019): a gate on a head's / unit's output scales the output
    # projection's columns of that head / unit, so ∂L/∂gate = Σ over those columns of w·∂L/∂w.
    if axes == ("hidden", "inner"):
        gate = wg.sum(0).reshape(n_heads, head_size).sum(1)
        acc["heads"][layer] += gate.abs().double()
    elif axes == ("hidden", "ffn"):
        acc["intermediate"][layer] += wg.sum(0).abs().double()


def _activation(model, calibration: CalibrationSet) -> ImportanceScores:
    adapter = get_adapter(model)
    config = model.config
    n_layers, _, _, n_heads, head_size = _sizes(config, adapter)
    acc = _empty(config, adapter)
    layers = adapter.layers(model)
    state: dict[str, torch.Tensor] = {}

    def mean_abs(x: torch.Tensor) -> torch.Tensor:
        mask = state["mask"]  # [B, T, 1]: padding positions do not count
        return (x.abs() * mask).sum((0, 1)).double() / mask.sum().clamp(min=1).double()

    def ffn_hook(index):
        def hook(_module, inputs):
            acc["intermediate"][index] += mean_abs(inputs[0])
        return hook

    def attention_hook(index):
        def hook(_module, inputs):
            context = inputs[0]
            acc["inner"][index] += mean_abs(context).reshape(n_heads, head_size)
            per_head = context.reshape(*context.shape[:2], n_heads, head_size).norm(dim=-1)
            acc["heads"][index] += mean_abs(per_head)
        return hook

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.get_submodule(adapter.ffn_output).register_forward_pre_hook(ffn_hook(i)))
        handles.append(layer.get_submodule(adapter.attention_output).register_forward_pre_hook(attention_hook(i)))
    try:
        with torch.no_grad():
            for batch in calibration.batches:
                inputs = model_inputs(batch, with_labels=False)
                mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"]))
                state["mask"] = mask.unsqueeze(-1).to(torch.float32)
                out = model(**inputs, output_hidden_states=True)
                states = out.hidden_states
                acc["hidden_embeddings"] += mean_abs(states[0])
                for i in range(n_layers):
                    acc["hidden_layers"][i] += mean_abs(states[i + 1])
    finally:
        for handle in handles:
            handle.remove()
    return _scores("activation", calibration.num_examples, acc)

"""Selective weight copy: keep the teacher's *important* hidden dimensions, FFN units, heads and layers.

The paper's uniform width selection (000 §2.2) keeps evenly spaced elements and collapses at half
width; its authors name selective copy as future work (000 §4.1, §7). Here every choice is measured
on a small calibration set of the task (a few hundred labelled examples):

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

Layer choice (``--layer-map importance``): greedy backward elimination: starting from all teacher
layers, repeatedly drop the layer whose removal increases the calibration task loss least (a
bare encoder: the cosine distance of the mean-pooled last hidden state to the full teacher's), until
the student's depth is left. The loss measured is exactly that of the full-width student built by
copying the remaining layers, so the criterion is the copy-without-fine-tuning loss it optimises.

Everything is deterministic: the calibration subset is drawn with ``seed``, the model runs in eval
mode (no dropout), and ties are broken by the lower index. Kept index lists are sorted ascending.
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
from polydistill.errors import PolydistillError, require
from polydistill.student.selection import WidthPlan, target_sizes

CRITERIA = ("auto", "taylor", "activation")


# -- calibration data ------------------------------------------------------------------------------


@dataclass
class CalibrationSet:
    """Padded model-input batches (with ``labels`` when the data has them) and where they came from."""

    batches: list[dict[str, torch.Tensor]]
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return sum(int(b["input_ids"].shape[0]) for b in self.batches)


def calibration_from_task_data(data, tokenizer, size: int = 256, seed: int = 0, max_length: int = 128,
                               batch_size: int = 8, split: str = "train") -> CalibrationSet:
    """A seeded random subset of ``size`` examples of ``data`` (a TaskData), tokenised and batched."""
    from polydistill.data.tokenize import data_collator, tokenize_task_data

    require(size >= 1, f"--calibration-size must be at least 1, not {size}.")
    require(split in data.splits and len(data.splits[split]) > 0,
            f"The calibration data {data.name} has no {split!r} examples; pick a dataset/languages with a "
            f"{split} split.")
    pool = data.splits[split]
    n = min(size, len(pool))
    subset = pool.shuffle(seed=seed).select(range(n))
    from polydistill.data.types import TaskData

    small = TaskData(name=data.name, task=data.task, label_names=data.label_names,
                     splits=type(data.splits)({split: subset}), languages=data.languages)
    tokenized = tokenize_task_data(small, tokenizer, max_length=max_length)[split]
    collate = data_collator(data.task, tokenizer)
    rows = [tokenized[i] for i in range(len(tokenized))]
    batches = [dict(collate(rows[i:i + batch_size])) for i in range(0, len(rows), batch_size)]
    description = {"dataset": data.name, "languages": list(data.languages), "split": split, "examples": n,
                   "seed": seed, "max_length": max_length, "batch_size": batch_size}
    return CalibrationSet(batches=batches, description=description)


def load_calibration(tokenizer, dataset: str, languages: str | list[str] = "all", size: int = 256,
                     data_root: str | None = None, seed: int = 0, max_length: int = 128,
                     batch_size: int = 8) -> CalibrationSet:
    """Calibration batches from a dataset name, with the same flags as every other stage."""
    from polydistill.data.load import load_task_data

    data = load_task_data(dataset, languages=languages, data_root=data_root, seed=seed, purpose="train")
    return calibration_from_task_data(data, tokenizer, size=size, seed=seed, max_length=max_length,
                                      batch_size=batch_size)


def _as_calibration(calibration) -> CalibrationSet:
    if isinstance(calibration, CalibrationSet):
        return calibration
    if calibration is None:
        raise PolydistillError(
            "Importance selection needs calibration data: pass --calibration-data DATASET (with "
            "--calibration-languages / --calibration-size / --data-root), or use uniform selection."
        )
    batches = list(calibration)
    require(batches and all(isinstance(b, dict) and "input_ids" in b for b in batches),
            "Calibration batches must be dicts of model inputs with input_ids.")
    return CalibrationSet(batches=batches, description={"source": "batches given in code"})


# -- scores -----------------------------------------------------------------------------------------


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


def _model_inputs(batch: dict[str, torch.Tensor], with_labels: bool) -> dict[str, torch.Tensor]:
    keep = {"input_ids", "attention_mask", "token_type_ids"} | ({"labels"} if with_labels else set())
    return {k: v for k, v in batch.items() if k in keep}


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
    calibration = _as_calibration(calibration)
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


def _taylor(model, calibration: CalibrationSet) -> ImportanceScores:
    adapter = get_adapter(model)
    config = model.config
    _, hidden, _, n_heads, head_size = _sizes(config, adapter)
    embed_shrinks = adapter.embedding_size(config) == hidden
    layer_re = re.compile(rf"^{re.escape(_layer_prefix(model, adapter))}\.(\d+)\.")
    acc = _empty(config, adapter)

    # The word embedding is huge (250k rows for XLM-R vocabularies) and its gradient is zero outside
    # the batch's tokens: score it from the gradient of its *output* instead of a dense weight grad.
    word_name = next((n for n, _ in model.named_parameters() if n.endswith("word_embeddings.weight")), None)
    word_module = model.get_submodule(word_name.rsplit(".", 1)[0]) if word_name else None
    captured: dict[str, torch.Tensor] = {}

    def capture(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured["out"] = leaf
        return leaf

    params = dict(model.named_parameters())
    rules = {name: adapter.axis_rule(name) for name in params}
    saved_flags = {name: p.requires_grad for name, p in params.items()}
    hook = word_module.register_forward_hook(capture) if word_module is not None else None
    try:
        for name, p in params.items():
            p.requires_grad_(name != word_name)
        for batch in calibration.batches:
            model.zero_grad(set_to_none=True)
            loss = model(**_model_inputs(batch, with_labels=True)).loss
            loss.backward()
            with torch.no_grad():
                if word_module is not None and embed_shrinks:
                    acc["hidden_embeddings"] += _word_embedding_taylor(
                        word_module.weight, batch["input_ids"], captured["out"].grad)
                for name, p in params.items():
                    if p.grad is None or rules[name] is None:
                        continue
                    _accumulate(acc, name, p, rules[name], layer_re, embed_shrinks, n_heads, head_size)
    finally:
        if hook is not None:
            hook.remove()
        for name, p in params.items():
            p.requires_grad_(saved_flags[name])
        model.zero_grad(set_to_none=True)
    return ImportanceScores(criterion="taylor", num_examples=calibration.num_examples, seconds=0.0, **acc)


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
                inputs = _model_inputs(batch, with_labels=False)
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
    return ImportanceScores(criterion="activation", num_examples=calibration.num_examples, seconds=0.0, **acc)


# -- width plan -------------------------------------------------------------------------------------


def plan_from_scores(scores: ImportanceScores, config, teacher_layers: Sequence[int], hidden: int | None = None,
                     intermediate: int | None = None, heads: int | None = None,
                     per_head_dims: bool = True) -> WidthPlan:
    """The top-scoring elements of every dimension for a student copying ``teacher_layers``.

    ``per_head_dims``: every kept head keeps its own top head dimensions (``WidthPlan.head_dims``).
    Head dimensions are interchangeable across heads in a trained model (on the real e5 teacher the
    scores of a shared index summed over heads differ by only ±8 %), so one shared set is close to
    arbitrary; per head the scores are far more spread. False: one set shared by all heads.
    """
    hidden, intermediate, n_heads, head_size = target_sizes(config, hidden, intermediate, heads)
    teacher_layers = list(teacher_layers)
    t_heads = config.num_attention_heads
    head_sets = [top_k(scores.heads[k], n_heads) for k in teacher_layers]
    inner = sum(scores.inner[k][head_sets[i]].sum(0) for i, k in enumerate(teacher_layers))
    plan = WidthPlan(
        hidden=top_k(scores.hidden(teacher_layers), hidden),
        intermediate=[top_k(scores.intermediate[k], intermediate) for k in teacher_layers],
        heads=head_sets,
        head_dim=top_k(inner, head_size),
        method="importance",
    )
    if per_head_dims and head_size < scores.inner.shape[-1]:
        plan.head_dims = [[top_k(scores.inner[k][h], head_size) for h in head_sets[i]]
                          for i, k in enumerate(teacher_layers)]
    plan.details = {
        "criterion": _CRITERION_WORDS[scores.criterion],
        "calibration": scores.calibration,
        "calibration_examples": scores.num_examples,
        "scoring_seconds": round(scores.seconds, 2),
        "kept_heads_of": t_heads,
        "head_dims": "per head" if plan.head_dims is not None else "shared by all heads",
    }
    return plan


_CRITERION_WORDS = {
    "taylor": "taylor: first-order Taylor |w·dL/dw| of the teacher's task cross-entropy summed per hidden "
              "dimension and per head dimension of each head; Michel et al. (2019) gate gradient |dL/dgate| per FFN unit and "
              "head; absolute values per calibration batch",
    "activation": "activation: mean absolute activation per hidden dimension, FFN unit and head dimension, "
                  "mean context-vector norm per head (the teacher has no task head, so no task loss)",
}


def importance_plan(teacher, *, tokenizer=None, hidden: int | None = None, intermediate: int | None = None,
                    heads: int | None = None, teacher_layers: Sequence[int] | None = None, seed: int = 0,
                    calibration=None, scores: ImportanceScores | None = None,
                    criterion: str = "auto", per_head_dims: bool = True) -> WidthPlan:
    """Importance-based :class:`WidthPlan` for ``build_student(width_plan=...)``.

    ``calibration``: a :class:`CalibrationSet` (see :func:`load_calibration`) or a list of batches;
    ``scores`` may be given instead to reuse one scoring pass. ``seed`` is the seed the calibration
    subset was drawn with (recorded); the scoring itself has no randomness.
    """
    del tokenizer  # the calibration batches are already tokenised with the teacher's tokenizer
    model = teacher
    if isinstance(teacher, (str, bytes)) or hasattr(teacher, "__fspath__"):
        from polydistill.modeling import load_model

        model = load_model(teacher)
    config = model.config
    if teacher_layers is None:
        teacher_layers = list(range(config.num_hidden_layers))
    if scores is None:
        scores = score_importance(model, calibration, criterion=criterion)
    plan = plan_from_scores(scores, config, teacher_layers, hidden, intermediate, heads, per_head_dims)
    plan.details["seed"] = seed
    return plan


# -- layer choice -----------------------------------------------------------------------------------


@dataclass
class LayerSelection:
    """Chosen 0-indexed teacher layers and the elimination trace that chose them."""

    layers: list[int]
    criterion: str
    full_loss: float
    trace: list[dict[str, Any]]  # one entry per removed layer: removed, loss after removal
    seconds: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "criterion": self.criterion, "full_loss": self.full_loss,
                "trace": self.trace, "seconds": round(self.seconds, 2), "calibration": self.calibration}


def layer_importance(teacher, n_student: int, calibration, criterion: str = "auto") -> LayerSelection:
    """Greedy backward elimination of teacher layers by calibration loss (see the module docstring)."""
    model = teacher
    calibration = _as_calibration(calibration)
    adapter = get_adapter(model)
    encoder = adapter.encoder(model)
    all_layers = adapter.layers(model)
    n_teacher = len(all_layers)
    require(1 <= n_student <= n_teacher,
            f"The student needs between 1 and {n_teacher} layers (the teacher's depth), not {n_student}.")
    has_labels = all("labels" in b for b in calibration.batches)
    if criterion == "auto":
        criterion = "task-loss" if task_of(model) != "base" and has_labels else "representation"
    require(criterion in ("task-loss", "representation"),
            f"Unknown layer criterion {criterion!r}; choose task-loss or representation.")
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    reference: list[torch.Tensor] = []

    def evaluate(keep: list[int]) -> float:
        encoder.layer = nn.ModuleList([all_layers[i] for i in keep])
        total, count = 0.0, 0
        for b, batch in enumerate(calibration.batches):
            n = int(batch["input_ids"].shape[0])
            if criterion == "task-loss":
                total += float(model(**_model_inputs(batch, with_labels=True)).loss) * n
            else:
                pooled = _mean_pool(model, batch)
                if len(reference) <= b:
                    reference.append(pooled)
                total += float((1 - torch.cosine_similarity(pooled, reference[b], dim=-1)).sum())
            count += n
        return total / count

    keep = list(range(n_teacher))
    trace: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            full = evaluate(keep)
            while len(keep) > n_student:
                losses = [(evaluate([k for k in keep if k != drop]), drop) for drop in keep]
                loss, drop = min(losses)  # ties: the lower layer index goes first
                keep.remove(drop)
                trace.append({"removed": drop, "loss": round(loss, 6)})
    finally:
        encoder.layer = all_layers
        model.train(was_training)
    return LayerSelection(layers=keep, criterion=criterion, full_loss=round(full, 6), trace=trace,
                          seconds=time.perf_counter() - start, calibration=dict(calibration.description))


def _mean_pool(model, batch) -> torch.Tensor:
    inputs = _model_inputs(batch, with_labels=False)
    out = model(**inputs, output_hidden_states=True)
    last = out.hidden_states[-1]
    mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).unsqueeze(-1).to(last.dtype)
    return (last * mask).sum(1) / mask.sum(1).clamp(min=1)


def importance_layers(teacher, n_student: int, calibration, seed: int = 0, criterion: str = "auto") -> list[int]:
    """The 0-indexed teacher layers a ``n_student``-layer student should copy (ascending)."""
    del seed  # the calibration subset carries the seed; elimination itself is deterministic
    return layer_importance(teacher, n_student, calibration, criterion=criterion).layers


# -- the CLI's entry point --------------------------------------------------------------------------


@dataclass
class ImportanceChoice:
    """What ``polydistill student`` passes on to ``build_student`` (teacher already loaded)."""

    teacher: Any
    tokenizer: Any
    teacher_layers: list[int] | None
    width_plan: WidthPlan | None


def choose_by_importance(teacher, *, calibration_data: str | None, calibration_languages: str = "all",
                         calibration_size: int = 256, data_root: str | None = None, max_length: int = 128,
                         layers: int | None = None, layer_map: str = "alternate-last", hidden: int | None = None,
                         intermediate: int | None = None, heads: int | None = None,
                         width_select: str = "uniform", seed: int = 0) -> ImportanceChoice:
    """Load the teacher and calibration data once; choose layers (``layer_map='importance'``) and/or
    the width plan (``width_select='importance'``) by importance; anything else is left to
    ``build_student``'s own defaults (``None``)."""
    from polydistill.modeling import load_model, load_tokenizer
    from polydistill.student.layer_maps import resolve_layer_map
    from polydistill.student.selection import uniform_plan

    require(calibration_data is not None,
            "Importance selection (--width-select importance or --layer-map importance) needs "
            "--calibration-data DATASET (a few hundred task examples, e.g. the teacher's training data).")
    model, tokenizer = teacher, None
    if isinstance(teacher, (str, bytes)) or hasattr(teacher, "__fspath__"):
        model, tokenizer = load_model(teacher), load_tokenizer(teacher)
    calibration = load_calibration(tokenizer, calibration_data, languages=calibration_languages,
                                   size=calibration_size, data_root=data_root, seed=seed, max_length=max_length)
    n_teacher = model.config.num_hidden_layers
    n_student = n_teacher if layers is None else int(layers)
    selection = None
    if str(layer_map).strip().lower() == "importance":
        selection = layer_importance(model, n_student, calibration)
        teacher_layers = selection.layers
    else:
        teacher_layers = resolve_layer_map(layer_map, n_teacher, n_student)
    if width_select == "importance":
        plan = importance_plan(model, hidden=hidden, intermediate=intermediate, heads=heads,
                               teacher_layers=teacher_layers, seed=seed, calibration=calibration)
    else:
        plan = uniform_plan(model.config, hidden, intermediate, heads, n_layers=len(teacher_layers))
    if selection is not None:
        plan.details["layer_selection"] = selection.to_dict()
    return ImportanceChoice(teacher=model, tokenizer=tokenizer, width_plan=plan,
                            teacher_layers=teacher_layers if selection is not None else None)

"""Copy a teacher's (or base model's) tensors into a smaller student, slice by slice.

Every student tensor is found by name in the source, with student layer i read from teacher layer
``teacher_layers[i]``, and sliced along each dimension by the index set its adapter rule names
(see :mod:`polydistill.architectures.base`). A tensor no rule covers, or whose slice does not fit,
is a bug in an adapter and stops the build rather than leaving a random tensor behind silently.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from polydistill.architectures.base import ArchitectureAdapter
from polydistill.student.selection import WidthPlan


def _module_path(root: nn.Module, target: nn.Module) -> str:
    for name, module in root.named_modules():
        if module is target:
            return name
    raise RuntimeError("the layer list is not inside the model")  # adapter bug


def _index_sets(plan: WidthPlan, teacher_head_size: int, embed_shrinks: bool, layer: int | None):
    sets: dict[str, list[int] | None] = {"hidden": plan.hidden, "embed": plan.hidden if embed_shrinks else None}
    if layer is not None:
        sets["inner"] = plan.inner(layer, teacher_head_size)
        sets["ffn"] = plan.intermediate[layer]
    return sets


def copy_weights(
    source: nn.Module,
    target: nn.Module,
    adapter: ArchitectureAdapter,
    plan: WidthPlan,
    teacher_layers: list[int],
    source_config,
    include_head: bool = True,
) -> list[str]:
    """Copy ``source`` into ``target`` (same architecture, names relative to the given modules).

    ``source`` and ``target`` are both whole models or both backbones. With ``include_head=False``
    the pooler / classifier keep their fresh initialisation. Returns the names of copied tensors.
    """
    src_state = source.state_dict()
    src_layers = _module_path(source, adapter.layers(source))
    tgt_layers = _module_path(target, adapter.layers(target))
    layer_name = re.compile(rf"^{re.escape(tgt_layers)}\.(\d+)\.(.+)$")
    teacher_head_size = adapter.head_size(source_config)
    embed_shrinks = adapter.embedding_size(source_config) == source_config.hidden_size

    copied = []
    with torch.no_grad():
        for name, tensor in target.state_dict(keep_vars=True).items():
            axis_rule = adapter.axis_rule(name)
            if axis_rule is None:
                raise RuntimeError(f"no {adapter.name} adapter rule covers the tensor {name}")
            if axis_rule.head and not include_head:
                continue
            match = layer_name.match(name)
            layer: int | None = None
            src_name = name
            if match:
                layer = int(match.group(1))
                src_name = f"{src_layers}.{teacher_layers[layer]}.{match.group(2)}"
            value = src_state[src_name]
            sets = _index_sets(plan, teacher_head_size, embed_shrinks, layer)
            for dim, axis in enumerate(axis_rule.axes):
                if axis is not None and sets[axis] is not None:
                    value = value.index_select(dim, torch.tensor(sets[axis], dtype=torch.long))
            if value.shape != tensor.shape:
                raise RuntimeError(f"{name}: sliced source shape {tuple(value.shape)} != student {tuple(tensor.shape)}")
            tensor.copy_(value)
            copied.append(name)
    return copied

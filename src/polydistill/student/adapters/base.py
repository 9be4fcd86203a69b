"""What every architecture adapter knows: where the parts of a model live and how each tensor shrinks.

An adapter is data, not a class hierarchy: the backbone attribute, the path of the encoder's layer
list, the Q/K projections (for attention capture), and one *axis rule* per parameter name. An axis
rule says, for every dimension of a tensor, which index set selects it when the student is narrower
than the teacher:

- ``"hidden"``  the residual stream (embeddings, LayerNorms, Q/K/V inputs, attention output, FFN
  output, pooler, classifier input): one index set shared by the whole model;
- ``"inner"``   the attention's all-head dimension (Q/K/V outputs, attention-output input): the kept
  heads of that layer, and inside each kept head the kept head dimensions;
- ``"ffn"``     the FFN's intermediate dimension of that layer;
- ``"embed"``   the embedding width; equals ``"hidden"`` unless the architecture factorises its
  embeddings (ELECTRA / DeBERTa ``embedding_size`` != ``hidden_size``), in which case it is kept;
- ``None``      never shrinks (vocabulary, positions, labels, conv kernel).

Adding an architecture is one module that builds an :class:`ArchitectureAdapter`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

Axes = tuple[str | None, ...]


@dataclass(frozen=True)
class AxisRule:
    """Parameters whose name matches ``pattern`` (``re.search``) shrink along ``axes``."""

    pattern: str
    axes: Axes
    head: bool = False  # part of the task head (pooler/classifier): not copied from a base model


def rule(pattern: str, *axes: str | None, head: bool = False) -> AxisRule:
    return AxisRule(pattern, tuple(axes), head)


def linear(prefix: str, out_axis: str | None, in_axis: str | None, head: bool = False) -> list[AxisRule]:
    """Rules for an ``nn.Linear`` called ``prefix`` (weight is [out, in], bias is [out])."""
    return [rule(rf"{prefix}\.weight$", out_axis, in_axis, head=head), rule(rf"{prefix}\.bias$", out_axis, head=head)]


def norm(prefix: str, axis: str | None = "hidden") -> list[AxisRule]:
    return [rule(rf"{prefix}\.weight$", axis), rule(rf"{prefix}\.bias$", axis)]


_LAYER = r"layer\.\d+\."

# The BERT layer (also RoBERTa / XLM-R / ELECTRA): attention.self.{query,key,value},
# attention.output.{dense,LayerNorm}, intermediate.dense, output.{dense,LayerNorm}. Order matters:
# "attention.output.dense" must be matched before the FFN's "output.dense".
BERT_LAYER_RULES: list[AxisRule] = [
    *linear(_LAYER + r"attention\.self\.(query|key|value)", "inner", "hidden"),
    *linear(_LAYER + r"attention\.output\.dense", "hidden", "inner"),
    *norm(_LAYER + r"attention\.output\.LayerNorm"),
    *linear(_LAYER + r"intermediate\.dense", "ffn", "hidden"),
    *linear(_LAYER + r"output\.dense", "hidden", "ffn"),
    *norm(_LAYER + r"output\.LayerNorm"),
]

# BERT-style embeddings (word, position, token type, LayerNorm) in the embedding width.
BERT_EMBEDDING_RULES: list[AxisRule] = [
    rule(r"embeddings\.(word|position|token_type)_embeddings\.weight$", None, "embed"),
    *norm(r"embeddings\.LayerNorm", "embed"),
]

POOLER_RULES: list[AxisRule] = linear(r"pooler\.dense", "hidden", "hidden", head=True)
LINEAR_CLASSIFIER_RULES: list[AxisRule] = linear(r"(^|\.)classifier", None, "hidden", head=True)
# RoBERTa / ELECTRA sequence head: classifier.dense (hidden→hidden) then classifier.out_proj.
DENSE_CLASSIFIER_RULES: list[AxisRule] = [
    *linear(r"classifier\.dense", "hidden", "hidden", head=True),
    *linear(r"classifier\.out_proj", None, "hidden", head=True),
]


@dataclass(frozen=True)
class ArchitectureAdapter:
    """Where one architecture family keeps its parts, and how each of its tensors shrinks."""

    name: str  # family name shown to users, e.g. "BERT/mBERT"
    model_types: tuple[str, ...]  # config.model_type values this adapter handles
    rules: tuple[AxisRule, ...]
    query_key: tuple[str, str] | None = ("attention.self.query", "attention.self.key")
    # Config fields that must equal hidden_size in the student when they equal it in the teacher.
    tied_to_hidden: tuple[str, ...] = field(default=())

    # -- where things live -------------------------------------------------------------------
    def backbone(self, model: nn.Module) -> nn.Module:
        """The bare encoder (``BertModel`` etc.); a bare model is its own backbone."""
        prefix = getattr(model, "base_model_prefix", "")
        return getattr(model, prefix, model) if prefix else model

    def embeddings(self, model: nn.Module) -> nn.Module:
        return self.backbone(model).embeddings

    def encoder(self, model: nn.Module) -> nn.Module:
        return self.backbone(model).encoder

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The encoder's layer list (``encoder.layer`` in every supported family)."""
        return self.encoder(model).layer

    def head(self, model: nn.Module) -> dict[str, nn.Module]:
        """The task head's modules by attribute name (pooler and/or classifier); empty if none."""
        parts: dict[str, nn.Module] = {}
        backbone = self.backbone(model)
        for owner in (backbone, model):
            for attr in ("pooler", "classifier"):
                module = getattr(owner, attr, None)
                if module is not None and attr not in parts:
                    parts[attr] = module
        return parts

    def qk_projections(self, layer: nn.Module) -> tuple[nn.Module, nn.Module] | None:
        """The layer's query and key ``nn.Linear``; None where attention maps must come from
        ``output_attentions`` (DeBERTa's disentangled attention adds position terms)."""
        if self.query_key is None:
            return None
        return layer.get_submodule(self.query_key[0]), layer.get_submodule(self.query_key[1])

    def num_heads(self, config) -> int:
        return int(config.num_attention_heads)

    def head_size(self, config) -> int:
        return int(getattr(config, "attention_head_size", None) or config.hidden_size // config.num_attention_heads)

    def embedding_size(self, config) -> int:
        return int(getattr(config, "embedding_size", None) or config.hidden_size)

    # -- how tensors shrink ------------------------------------------------------------------
    def axis_rule(self, name: str) -> AxisRule | None:
        """The first rule matching parameter ``name``; None if no rule covers it."""
        for candidate in self.rules:
            if re.search(candidate.pattern, name):
                return candidate
        return None

    def student_config(self, teacher_config, n_layers: int, hidden: int, intermediate: int, heads: int):
        """A copy of the teacher's config with the student's sizes; everything else (labels,
        vocabulary, position settings, dropout) is kept."""
        import copy

        config = copy.deepcopy(teacher_config)
        factorised = self.embedding_size(teacher_config) != teacher_config.hidden_size
        config.num_hidden_layers = n_layers
        config.hidden_size = hidden
        config.intermediate_size = intermediate
        config.num_attention_heads = heads
        if hasattr(config, "embedding_size") and not factorised:
            config.embedding_size = hidden
        for name in self.tied_to_hidden:
            if getattr(teacher_config, name, None) == teacher_config.hidden_size:
                setattr(config, name, hidden)
        return config

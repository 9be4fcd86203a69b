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

Besides the axis rules an adapter is the one place that knows an architecture: where the
backbone, embeddings, layer list and head live, the Q/K projections and the attention/FFN output
projections inside a layer, the position limit (RoBERTa-style models offset positions by the
padding id), how parameters split into embeddings / encoder / rest, and where the MLM head sits.
Which *task* head a model carries (sequence / token / bare) is read off the Hugging Face class or
``config.architectures`` the same way for every family: :func:`task_of`.

Adding an architecture is one module that builds an :class:`ArchitectureAdapter`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, cast

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

Axes = tuple[str | None, ...]
Task = Literal["sequence", "token", "base"]
TASKS: tuple[str, ...] = ("sequence", "token", "base")


def task_of(model_or_config) -> Task:
    """sequence / token / base: from the model's class (an in-memory model may lack
    ``config.architectures``), else from ``config.architectures`` (a config read from disk)."""
    names = [type(model_or_config).__name__]
    config = getattr(model_or_config, "config", model_or_config)
    names += list(getattr(config, "architectures", None) or [])
    for name in names:
        if name.endswith("ForSequenceClassification"):
            return "sequence"
        if name.endswith("ForTokenClassification"):
            return "token"
    return "base"


@dataclass(frozen=True)
class ParamCounts:
    """Parameters of an encoder, split by where they live (shared tensors counted once)."""

    total: int
    embedding: int  # word + position + type embeddings and their LayerNorm (+ ELECTRA's projection)
    word_embedding: int  # the vocabulary matrix alone: what vocabulary reduction shrinks
    encoder: int  # the transformer layers (plus DeBERTa's relative-position table, which lives there)
    other: int  # pooler, task head, MLM head


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
    # The query, key and value projections inside a layer (their outputs feed relation KD; DeBERTa has
    # them too, although its attention maps also need position terms)
    qkv: tuple[str, str, str] = ("attention.self.query", "attention.self.key", "attention.self.value")
    # Inside a layer: the attention output projection (input = concatenated heads) and the FFN output
    # projection (input = the intermediate activations), hooked by importance scoring.
    attention_output: str = "attention.output.dense"
    ffn_output: str = "output.dense"
    # RoBERTa-style position ids start after the padding id: pad_token_id + 1 rows are never used.
    positions_offset_by_padding: bool = False
    # An embedding projection outside ``embeddings`` (ELECTRA's ``embeddings_project``), if any.
    embedding_projection: str | None = None
    # Config fields that must equal hidden_size in the student when they equal it in the teacher.
    tied_to_hidden: tuple[str, ...] = field(default=())

    # -- where things live -------------------------------------------------------------------
    def backbone(self, model: nn.Module) -> nn.Module:
        """The bare encoder (``BertModel`` etc.); a bare model is its own backbone."""
        prefix = getattr(model, "base_model_prefix", "")
        return getattr(model, prefix, model) if prefix else model

    def embeddings(self, model: nn.Module) -> nn.Module:
        return self.backbone(model).get_submodule("embeddings")

    def encoder(self, model: nn.Module) -> nn.Module:
        return self.backbone(model).get_submodule("encoder")

    def layers(self, model: nn.Module) -> nn.ModuleList:
        """The encoder's layer list (``encoder.layer`` in every supported family)."""
        return cast("nn.ModuleList", self.encoder(model).get_submodule("layer"))

    def set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """Put ``layers`` in place of the encoder's layer list (the other half of :meth:`layers`)."""
        self.encoder(model).layer = layers

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

    def qkv_projections(self, layer: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The layer's query, key and value ``nn.Linear`` (outputs: all heads concatenated)."""
        query, key, value = self.qkv
        return layer.get_submodule(query), layer.get_submodule(key), layer.get_submodule(value)

    def qk_projections(self, layer: nn.Module) -> tuple[nn.Module, nn.Module] | None:
        """The layer's query and key ``nn.Linear``; None where attention maps must come from
        ``output_attentions`` (DeBERTa's disentangled attention adds position terms)."""
        if self.query_key is None:
            return None
        return layer.get_submodule(self.query_key[0]), layer.get_submodule(self.query_key[1])

    def embedding_output(self, model: nn.Module) -> nn.Module:
        """The module whose output is hidden_states[0] (after an embedding projection, if any)."""
        backbone = self.backbone(model)
        projection = getattr(backbone, self.embedding_projection, None) if self.embedding_projection else None
        return projection if projection is not None else self.embeddings(model)

    def position_limit(self, config) -> int | None:
        """Longest input the position embeddings allow, or None when the config does not say."""
        limit = getattr(config, "max_position_embeddings", None)
        if not limit:
            return None
        if self.positions_offset_by_padding:
            limit -= (config.pad_token_id if config.pad_token_id is not None else 1) + 1
        return int(limit)

    def count_parameters(self, model: nn.Module) -> ParamCounts:
        """Split the parameters into embeddings, encoder layers and the rest (head, pooler, ...)."""
        embedding_modules = [self.embeddings(model)]
        if self.embedding_projection and getattr(self.backbone(model), self.embedding_projection, None) is not None:
            embedding_modules.append(getattr(self.backbone(model), self.embedding_projection))

        def unique(modules) -> dict[int, int]:
            return {id(p): p.numel() for module in modules for p in module.parameters()}

        everything = unique([model])
        emb = unique(embedding_modules)
        enc = {k: v for k, v in unique([self.encoder(model)]).items() if k not in emb}
        total = sum(everything.values())
        word_embeddings = cast("PreTrainedModel", model).get_input_embeddings()
        return ParamCounts(total=total, embedding=sum(emb.values()),
                           word_embedding=word_embeddings.get_parameter("weight").numel(),
                           encoder=sum(enc.values()), other=total - sum(emb.values()) - sum(enc.values()))

    def mlm_head_state(self, model: nn.Module) -> dict:
        """The tensors of a ``*ForMaskedLM`` model outside its backbone: the MLM head (BERT ``cls``,
        XLM-R ``lm_head``, DeBERTa-v2 ``lm_predictions``, ELECTRA generator head)."""
        prefix = cast("PreTrainedModel", model).base_model_prefix + "."
        return {k: v for k, v in model.state_dict().items() if not k.startswith(prefix)}

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

"""DeBERTa-v2 / v3 / mDeBERTa.

Layers use ``attention.self.{query,key,value}_proj`` (plus ``pos_key_proj`` / ``pos_query_proj``
when ``share_att_key`` is off). Relative attention lives at encoder level: ``encoder.rel_embeddings``
([2·buckets, hidden]) and the ``encoder.LayerNorm`` applied to it (``norm_rel_ebd``), and an optional
``encoder.conv`` (``conv_kernel_size`` > 0) after the first layer; all of these shrink along the
hidden index set. The sequence head is ``pooler.dense`` (ContextPooler) + a Linear ``classifier``.
Attention maps must come from ``output_attentions`` (the position terms are not in Q·K)."""

from __future__ import annotations

from polydistill.architectures.base import (
    BERT_LAYER_RULES,
    LINEAR_CLASSIFIER_RULES,
    POOLER_RULES,
    ArchitectureAdapter,
    linear,
    norm,
    rule,
)

_LAYER = r"layer\.\d+\."

ADAPTER = ArchitectureAdapter(
    name="DeBERTa-v2/v3 (mDeBERTa)",
    model_types=("deberta-v2",),
    rules=(
        rule(r"embeddings\.(word|position|token_type)_embeddings\.weight$", None, "embed"),
        *linear(r"embeddings\.embed_proj", "hidden", "embed"),
        *norm(r"embeddings\.LayerNorm", "hidden"),
        *linear(_LAYER + r"attention\.self\.(query|key|value|pos_key|pos_query)_proj", "inner", "hidden"),
        *BERT_LAYER_RULES,
        rule(r"encoder\.rel_embeddings\.weight$", None, "hidden"),
        *norm(r"encoder\.LayerNorm"),
        # Conv1d weight is [out, in/groups, kernel]; build.py refuses width reduction when groups > 1.
        rule(r"encoder\.conv\.conv\.weight$", "hidden", "hidden", None),
        rule(r"encoder\.conv\.conv\.bias$", "hidden"),
        *norm(r"encoder\.conv\.LayerNorm"),
        *POOLER_RULES,
        *LINEAR_CLASSIFIER_RULES,
    ),
    query_key=None,  # disentangled attention cannot be recomputed from Q/K alone
    qkv=("attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"),
    tied_to_hidden=("pooler_hidden_size",),
)

"""BERT / mBERT: ``bert.embeddings``, ``bert.encoder.layer[i]``, pooler + ``classifier`` (Linear)."""

from __future__ import annotations

from polydistill.architectures.base import (
    BERT_EMBEDDING_RULES,
    BERT_LAYER_RULES,
    LINEAR_CLASSIFIER_RULES,
    POOLER_RULES,
    ArchitectureAdapter,
)

ADAPTER = ArchitectureAdapter(
    name="BERT/mBERT",
    model_types=("bert",),
    rules=(*BERT_EMBEDDING_RULES, *BERT_LAYER_RULES, *POOLER_RULES, *LINEAR_CLASSIFIER_RULES),
)

"""ELECTRA (discriminator): BERT's layers; embeddings may be narrower than the hidden size, with
``embeddings_project`` (embedding_size → hidden) in between. The sequence head is
``classifier.dense`` + ``classifier.out_proj``, the token head a Linear ``classifier``."""

from __future__ import annotations

from polydistill.architectures.base import (
    BERT_EMBEDDING_RULES,
    BERT_LAYER_RULES,
    DENSE_CLASSIFIER_RULES,
    LINEAR_CLASSIFIER_RULES,
    ArchitectureAdapter,
    linear,
)

ADAPTER = ArchitectureAdapter(
    name="ELECTRA",
    model_types=("electra",),
    rules=(
        *BERT_EMBEDDING_RULES,
        *linear(r"embeddings_project", "hidden", "embed"),
        *BERT_LAYER_RULES,
        *DENSE_CLASSIFIER_RULES,
        *LINEAR_CLASSIFIER_RULES,
    ),
    embedding_projection="embeddings_project",
)

"""RoBERTa / XLM-R: BERT's layers; the sequence head is ``classifier.dense`` + ``classifier.out_proj``
(no pooler), the token head a Linear ``classifier``. Position ids start after the padding id, which
only affects the (unchanged) number of rows of the position table."""

from __future__ import annotations

from polydistill.architectures.base import (
    BERT_EMBEDDING_RULES,
    BERT_LAYER_RULES,
    DENSE_CLASSIFIER_RULES,
    LINEAR_CLASSIFIER_RULES,
    POOLER_RULES,
    ArchitectureAdapter,
)

ADAPTER = ArchitectureAdapter(
    name="RoBERTa/XLM-R",
    model_types=("roberta", "xlm-roberta", "camembert"),
    rules=(
        *BERT_EMBEDDING_RULES,
        *BERT_LAYER_RULES,
        *POOLER_RULES,
        *DENSE_CLASSIFIER_RULES,
        *LINEAR_CLASSIFIER_RULES,
    ),
    positions_offset_by_padding=True,
)

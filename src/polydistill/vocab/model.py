"""VocabReduce, model side: slice every vocabulary-sized tensor (input embedding rows, an MLM decoder and
its bias) with the plan's old→new id map, so the kept rows are bit-identical; count parameters before and
after without loading weights (meta device) for the plan report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polydistill.architectures import count_parameters
from polydistill.errors import require

if TYPE_CHECKING:
    from polydistill.vocab.plan import VocabPlan

_TOKEN_ID_KEYS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                  "mask_token_id", "unk_token_id", "decoder_start_token_id")


def model_class(config):
    """The class named in config.architectures (any head), else the bare AutoModel."""
    import transformers

    for name in config.architectures or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


def _reduced_config(config, plan: VocabPlan):
    config = config.__class__.from_dict(config.to_dict())
    config.vocab_size = plan.new_size
    old_to_new = plan.old_to_new
    for key in _TOKEN_ID_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            setattr(config, key, old_to_new.get(value))
    return config


def reduce_model(model, plan: VocabPlan):
    """A new model of the same class whose vocabulary-sized tensors keep only ``plan.kept_ids`` rows."""
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    require(
        old_rows >= plan.old_size,
        f"The model's embedding has {old_rows} rows but the tokenizer has {plan.old_size} tokens; "
        "they do not belong together.",
    )
    index = torch.tensor(plan.kept_ids, dtype=torch.long)
    state = {}
    for name, tensor in model.state_dict().items():
        # Every tensor with one row per vocabulary entry: word embeddings, MLM decoder weight and bias.
        state[name] = tensor.index_select(0, index).clone() if tensor.ndim >= 1 and tensor.shape[0] == old_rows else tensor
    new = model.__class__(_reduced_config(model.config, plan))
    missing, unexpected = new.load_state_dict(state, strict=False)
    require(not missing and not unexpected,
            f"Weights did not match while rebuilding the reduced model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}).")
    new.tie_weights()
    new.to(next(model.parameters()).dtype)
    new.eval()
    return new


def _meta_model(config):
    import torch

    cls = model_class(config)
    with torch.device("meta"):
        return cls._from_config(config) if hasattr(cls, "_from_config") else cls(config)


def parameter_counts(config, plan: VocabPlan) -> dict[str, int]:
    """Parameters (total and word embedding) before and after the reduction, from the config alone."""
    before = _meta_model(config)
    rows = before.get_input_embeddings().weight.shape[0]
    require(rows >= plan.old_size,
            f"The model's embedding has {rows} rows but the tokenizer has {plan.old_size} tokens; "
            "they do not belong together.")
    after = _meta_model(_reduced_config(config, plan))
    counts_before, counts_after = count_parameters(before), count_parameters(after)
    return {"params_before": counts_before.total, "params_after": counts_after.total,
            "embedding_rows_before": rows,
            "embedding_params_before": counts_before.word_embedding,
            "embedding_params_after": counts_after.word_embedding}


__all__ = ["model_class", "parameter_counts", "reduce_model"]

"""Architecture adapters: one small module per family says where its parts live (the only place
that knows an architecture; see ``base.py``).

``get_adapter(model_or_config)`` picks the adapter from ``config.model_type`` and refuses anything
else by name, listing the supported families.
"""

from __future__ import annotations

from polydistill.architectures.base import TASKS, ArchitectureAdapter, AxisRule, ParamCounts, Task, task_of
from polydistill.architectures.bert import ADAPTER as BERT
from polydistill.architectures.deberta_v2 import ADAPTER as DEBERTA_V2
from polydistill.architectures.electra import ADAPTER as ELECTRA
from polydistill.architectures.roberta import ADAPTER as ROBERTA
from polydistill.errors import PolydistillError

ADAPTERS: tuple[ArchitectureAdapter, ...] = (BERT, ROBERTA, DEBERTA_V2, ELECTRA)
_BY_MODEL_TYPE = {model_type: adapter for adapter in ADAPTERS for model_type in adapter.model_types}


def supported_architectures() -> str:
    return ", ".join(f"{a.name} ({'/'.join(a.model_types)})" for a in ADAPTERS)


def count_parameters(model) -> ParamCounts:
    """Parameters of ``model`` split into embeddings / encoder / other (see ``ArchitectureAdapter``)."""
    return get_adapter(model).count_parameters(model)


def get_adapter(model_or_config) -> ArchitectureAdapter:
    """The adapter for a model, a config, or a ``model_type`` string."""
    if isinstance(model_or_config, str):
        model_type = model_or_config
    else:
        config = getattr(model_or_config, "config", model_or_config)
        model_type = getattr(config, "model_type", None) or type(model_or_config).__name__
    adapter = _BY_MODEL_TYPE.get(model_type)
    if adapter is None:
        raise PolydistillError(
            f"Architecture {model_type!r} is not supported; polydistill supports {supported_architectures()}."
        )
    return adapter


__all__ = ["ADAPTERS", "TASKS", "ArchitectureAdapter", "AxisRule", "ParamCounts", "Task", "count_parameters", "get_adapter",
           "supported_architectures", "task_of"]

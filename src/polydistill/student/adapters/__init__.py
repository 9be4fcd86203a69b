"""Architecture adapters: one small module per family says where its parts live.

``get_adapter(model_or_config)`` picks the adapter from ``config.model_type`` and refuses anything
else by name, listing the supported families.
"""

from __future__ import annotations

from polydistill.errors import PolydistillError
from polydistill.student.adapters.base import ArchitectureAdapter, AxisRule
from polydistill.student.adapters.bert import ADAPTER as BERT
from polydistill.student.adapters.deberta_v2 import ADAPTER as DEBERTA_V2
from polydistill.student.adapters.electra import ADAPTER as ELECTRA
from polydistill.student.adapters.roberta import ADAPTER as ROBERTA

ADAPTERS: tuple[ArchitectureAdapter, ...] = (BERT, ROBERTA, DEBERTA_V2, ELECTRA)
_BY_MODEL_TYPE = {model_type: adapter for adapter in ADAPTERS for model_type in adapter.model_types}


def supported_architectures() -> str:
    return ", ".join(f"{a.name} ({'/'.join(a.model_types)})" for a in ADAPTERS)


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


__all__ = ["ADAPTERS", "ArchitectureAdapter", "AxisRule", "get_adapter", "supported_architectures"]

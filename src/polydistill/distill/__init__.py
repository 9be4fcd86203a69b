"""Teacher fine-tuning and TinyBERT-style task distillation (Wibowo et al. 2024, §2.1, §3).

``finetune(model, data, settings, tokenizer=None) -> RunResult`` and
``distill(teacher, student, data, settings, kd=None, tokenizer=None) -> RunResult``; settings are
``TrainSettings`` / ``KDSettings``; new KD terms are registered with ``register_term``. Imported
lazily so that ``import polydistill.distill`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainSettings": "polydistill.distill.settings",
    "KDSettings": "polydistill.distill.settings",
    "RunResult": "polydistill.distill.run",
    "finetune": "polydistill.distill.finetune",
    "distill": "polydistill.distill.kd",
    "PolydistillTrainer": "polydistill.distill.trainer",
    "register_term": "polydistill.distill.terms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        # importing a submodule binds its name here (finetune, ...): rebind it to the function
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polydistill.distill' has no attribute {name!r}")

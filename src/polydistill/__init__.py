"""polydistill: multilingual knowledge distillation toolkit."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "build_student"]


def __getattr__(name: str):
    # Lazy so that ``import polydistill`` stays cheap (no torch import for --help).
    if name == "build_student":
        from polydistill.student.build import build_student

        return build_student
    raise AttributeError(name)

"""One exception type for every problem the user can fix.

The CLI turns a :class:`PolydistillError` into one sentence on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PolydistillError(Exception):
    """Bad input or an unusable artefact; the message says what is wrong and how to fix it."""


def require(condition: object, message: str) -> None:
    """Raise :class:`PolydistillError` with ``message`` unless ``condition`` holds (is truthy)."""
    if not condition:
        raise PolydistillError(message)


class TrainingDiverged(PolydistillError):
    """A training stopped on a non-finite loss or non-finite weights. Its work dir is marked, so that a
    re-run with changed settings (a lower learning rate: the advertised remedy) starts afresh there."""


def require_types(**checks: tuple[object, type | tuple[type, ...], str]) -> None:
    """The type checks of a library entry point: ``name=(value, expected type(s), what it should be)``; the
    first value of another type is one sentence (``data must be a TaskData (...), got str 'tsm'.``) instead
    of an AttributeError deep inside. ``bool`` is not accepted where ``int`` is expected."""
    for name, (value, expected, what) in checks.items():
        kinds = expected if isinstance(expected, tuple) else (expected,)
        if isinstance(value, bool) and bool not in kinds:
            ok = False
        else:
            ok = isinstance(value, kinds)
        if not ok:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise PolydistillError(f"{name} must be {what}, got {type(value).__name__} {shown}.")

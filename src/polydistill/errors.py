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

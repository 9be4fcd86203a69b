"""Which teacher layers a student copies (depth reduction), as 0-indexed teacher layer ids.

Named maps, for N_T teacher layers and N_S student layers (student layer i, 1-indexed):

- ``alternate-last`` (default): teacher layer k = i·N_T/N_S, 1-indexed (Wibowo et al. 2024, eq. 6 =
  TinyBERT's KD map; includes the teacher's last layer). 12→6 copies 1-indexed 2,4,…,12 = 0-indexed
  1,3,…,11.
- ``alternate-first``: teacher layer k = (i−1)·N_T/N_S + 1, 1-indexed (DistilBERT / Eliquare 2n−1;
  includes the teacher's first layer). 12→6 copies 0-indexed 0,2,…,10.
- ``first``: the first N_S layers; ``last``: the last N_S layers.
- an explicit list (or comma string) of distinct 0-indexed teacher layers, in student order.

Rounding when N_T/N_S is not an integer: k is rounded half up to the nearest integer. Because the
step N_T/N_S is ≥ 1 the rounded layers stay distinct and increasing, alternate-last still ends at
the teacher's last layer and alternate-first still starts at its first. E.g. 12→5: alternate-last
0-indexed [1, 4, 6, 9, 11], alternate-first [0, 2, 5, 7, 10].

Other maps (e.g. importance-based) can be added to :data:`LAYER_MAPS` by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from polydistill.errors import PolydistillError, require


def _round_half_up(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), halves up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def alternate_last(n_teacher: int, n_student: int) -> list[int]:
    return [_round_half_up(i * n_teacher, n_student) - 1 for i in range(1, n_student + 1)]


def alternate_first(n_teacher: int, n_student: int) -> list[int]:
    return [_round_half_up(i * n_teacher, n_student) for i in range(n_student)]


def first(n_teacher: int, n_student: int) -> list[int]:
    return list(range(n_student))


def last(n_teacher: int, n_student: int) -> list[int]:
    return list(range(n_teacher - n_student, n_teacher))


LAYER_MAPS: dict[str, Callable[[int, int], list[int]]] = {
    "alternate-last": alternate_last,
    "alternate-first": alternate_first,
    "first": first,
    "last": last,
}


def _parse_explicit(spec: str | Sequence[int]) -> list[int] | None:
    """The explicit layer list in ``spec``, or None if ``spec`` is a map name."""
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        if not parts or not all(p.lstrip("-").isdigit() for p in parts):
            return None
        return [int(p) for p in parts]
    return [int(x) for x in spec]


def explicit_length(spec: str | Sequence[int]) -> int | None:
    """Number of layers of an explicit map (so ``--layers`` may be omitted), None for a name."""
    layers = _parse_explicit(spec)
    return None if layers is None else len(layers)


def resolve_layer_map(spec: str | Sequence[int], n_teacher: int, n_student: int) -> list[int]:
    """The 0-indexed teacher layers that student layers 0..N_S−1 copy, in order."""
    require(
        1 <= n_student <= n_teacher,
        f"The student needs between 1 and {n_teacher} layers (the teacher's depth), not {n_student}; "
        "pass a smaller --layers.",
    )
    explicit = _parse_explicit(spec)
    if explicit is None:
        name = str(spec).strip().lower()
        if name not in LAYER_MAPS:
            raise PolydistillError(
                f"Unknown layer map {spec!r}; use one of {', '.join(LAYER_MAPS)} or a comma list of "
                "0-indexed teacher layers such as 0,5,11."
            )
        return LAYER_MAPS[name](n_teacher, n_student)
    require(
        len(explicit) == n_student,
        f"The explicit layer map lists {len(explicit)} teacher layers but the student has {n_student}; "
        "give one teacher layer per student layer.",
    )
    bad = [k for k in explicit if not 0 <= k < n_teacher]
    require(
        not bad,
        f"Teacher layers {bad} are out of range; the teacher has layers 0..{n_teacher - 1} (0-indexed).",
    )
    repeated = sorted({k for k in explicit if explicit.count(k) > 1})
    require(not repeated, f"Teacher layers {repeated} are listed more than once; list each layer at most once.")
    return explicit

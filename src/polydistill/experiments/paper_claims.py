"""The paper's claims, one row per claim and dataset, decided on the runs of a results store.

Each claim names the comparison that tests it: a linear contrast of student rows (one row = a model of
one grid, optionally with fixed design values, e.g. hidden 192 or fraction 0.1), read on one eval group,
with a paired bootstrap over the shared test examples (:func:`stats.contrast_bootstrap`; seeds averaged).
The rows may come from different grids of the store when those grids evaluate on the same examples
(Table 6's English-teacher students against Table 1's). A claim of the form "A is near B" is decided
against a stated margin instead of 0.

Verdicts: ``reproduced`` (the interval lies on the claimed side), ``not reproduced`` (it lies on the
other side), ``inconclusive`` (it straddles the boundary); ``not run`` when the store lacks the rows,
``not testable here`` with the reason where the data cannot test the claim; ``inconclusive at this scale``
where a model the claim is about stays at chance (a floor effect: it has no room to lose).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polydistill.errors import PolydistillError
from polydistill.experiments.tables import flatten, run_examples
from polydistill.reporting import stats
from polydistill.reporting.tables import markdown_rows

TABLE1 = "cpu-table1-all-languages"
TABLE3 = "cpu-table3-from-base"
TABLE5 = "cpu-table5-zero-shot-seen"
TABLE6 = "cpu-table6-english-teacher"
TABLE7 = "cpu-table7-copy-without-finetune"
TABLE8 = "cpu-table8-hidden-size"
FIGURE2 = "cpu-figure2-data-fractions"
FIGURE2_TSM_UNER = "cpu-figure2-data-fractions-tsm-uner"  # beyond the paper: Figure 2 on tsm and universal-ner
DATASETS = ("massive", "tsm", "universal-ner")
MAIN_GROUPS = ("all", "seen")  # a dataset's main eval group: the first of these it has
# "near chance": the copy's F1 lies within this many points of the chance baseline's
NEAR_CHANCE_POINTS = 10.0


@dataclass(frozen=True)
class Side:
    """The runs of one row: a model label of one grid, with fixed values of other row dimensions."""

    grid: str
    model: str
    where: tuple[tuple[str, Any], ...] = ()
    name: str = ""  # shown instead of the model label where two sides share it

    def label(self) -> str:
        fixed = "".join(f", {dim.replace('_', ' ')} {value}" for dim, value in self.where)
        return self.name or f"{self.model}{fixed}"


@dataclass(frozen=True)
class Comparison:
    """Σ weight · F1(side) (− the chance baseline's F1 on the first side's examples) on the first of
    ``groups`` that every side has."""

    terms: tuple[tuple[float, Side], ...]
    groups: tuple[str, ...] = MAIN_GROUPS
    minus_chance: bool = False  # subtract the chance baseline (majority class / random tags)
    # terms (indices) that must score above chance for the comparison to decide anything: a model that stays
    # at chance even with all the data has no room to lose more when data is taken away (a floor effect)
    above_chance: tuple[int, ...] = ()

    def text(self) -> str:
        parts = []
        for i, (weight, side) in enumerate(self.terms):
            sign = ("" if i == 0 else " + ") if weight > 0 else (" − " if i else "−")
            parts.append(f"{sign}{'' if abs(weight) == 1 else f'{abs(weight):g}·'}{side.label()}")
        if self.minus_chance:
            parts.append(" − chance")
        grids = sorted({side.grid for _, side in self.terms})
        return "".join(parts) + f" ({', '.join(grids)})"


@dataclass(frozen=True)
class PaperClaim:
    text: str
    comparisons: tuple[Comparison, ...]  # alternatives: the first the store can evaluate decides
    near: float | None = None  # "near" claims: reproduced when the interval lies inside ±near points
    not_testable: dict[str, str] = field(default_factory=dict)  # dataset → why the data cannot test it


def _t(grid: str, model: str, name: str = "", **where: Any) -> Side:
    return Side(grid, model, tuple(where.items()), name)


PAPER_CLAIMS = (
    PaperClaim("Initialisation matters more than KD", (
        Comparison(((1, _t(TABLE1, "from-teacher")), (-1, _t(TABLE1, "from-scratch + KD")))),)),
    PaperClaim("From-teacher ≫ from-scratch on unseen languages", (
        Comparison(((1, _t(TABLE1, "from-teacher + KD")), (-1, _t(TABLE1, "from-scratch + KD"))), ("unseen",)),
        # tsm trains on every language in Table 1: Table 5's teacher and students train on its seen ones
        Comparison(((1, _t(TABLE5, "from-teacher + KD", train_languages="as teacher")),
                    (-1, _t(TABLE5, "from-scratch + KD", train_languages="as teacher"))), ("unseen",)))),
    PaperClaim("From-base < from-teacher", (
        Comparison(((1, _t(TABLE3, "from-teacher + KD")), (-1, _t(TABLE3, "from-base + KD")))),)),
    PaperClaim("Half-width (uniform copy) collapses", (
        Comparison(((1, _t(TABLE8, "from-teacher + KD", hidden="full")),
                    (-1, _t(TABLE8, "from-teacher + KD", hidden=192)))),)),
    PaperClaim("English-only teachers transfer worse", (
        Comparison(((1, _t(TABLE1, "from-teacher + KD", "from-teacher + KD of the multilingual teacher")),
                    (-1, _t(TABLE6, "from-teacher + KD", "from-teacher + KD of the English-only teacher"))),
                   ("unseen", "all")),),
        not_testable={"universal-ner": "en_ewt has no UNER v1 train file, so there is no English-only NER teacher"}),
    PaperClaim("Copy without fine-tuning is near chance", (
        Comparison(((1, _t(TABLE7, "copy w/o fine-tuning")),), minus_chance=True),),
        near=NEAR_CHANCE_POINTS),
    PaperClaim("Fewer data hurts from-scratch most", tuple(
        Comparison(((1, _t(grid, "from-scratch + KD", fraction=1.0)), (-1, _t(grid, "from-scratch + KD", fraction=0.1)),
                    (-1, _t(grid, "from-teacher + KD", fraction=1.0)), (1, _t(grid, "from-teacher + KD", fraction=0.1))),
                   above_chance=(0,))
        for grid in (FIGURE2, FIGURE2_TSM_UNER))),
)


@dataclass
class ClaimRow:
    claim: str
    dataset: str
    comparison: str = ""
    group: str = ""
    difference: float | None = None  # F1 points
    low: float | None = None
    high: float | None = None
    seeds: str = ""
    verdict: str = "not run"

    def cells(self) -> list[str]:
        if self.difference is None:
            return [self.claim, self.dataset, self.comparison or "–", "–", "–", "–", "–", self.verdict]
        return [self.claim, self.dataset, self.comparison, self.group, f"{self.difference:+.2f}",
                f"[{self.low:+.2f}, {self.high:+.2f}]", self.seeds, self.verdict]


HEADER = ["claim", "dataset", "comparison (grid)", "eval group", "difference (F1 points)", "95 % CI", "seeds",
          "verdict"]


def _verdict(low: float, high: float, near: float | None) -> str:
    if near is None:
        return "reproduced" if low > 0 else "not reproduced" if high < 0 else "inconclusive"
    if -near < low and high < near:
        return "reproduced"
    return "not reproduced" if low >= near or high <= -near else "inconclusive"


class _Runs:
    """The flattened rows of every grid of the store, and each run's decoded predictions (decoded once)."""

    def __init__(self, grids: dict[str, list[dict[str, Any]]]):
        self.rows = {name: flatten(records) for name, records in grids.items()}
        self.records = {rec["run_id"]: rec for records in grids.values() for rec in records}
        self._decoded: dict[str, Any] = {}

    def side_rows(self, side: Side, dataset: str, group: str) -> list[dict[str, Any]]:
        rows = [r for r in self.rows.get(side.grid, []) if r["model"] == side.model and r["dataset"] == dataset
                and r["eval"] == group and all(r[d] == v for d, v in side.where)]
        seeds = [r["seed"] for r in rows]
        if len(seeds) != len(set(seeds)):
            raise PolydistillError(f"{side.grid}: the row {side.label()} of {dataset} holds several runs per seed; "
                                   "name the design values that tell them apart in the claim.")
        return sorted(rows, key=lambda r: r["seed"])

    def examples(self, rows: list[dict[str, Any]]):
        return run_examples(rows, self.records, self._decoded)

    def chance(self, rows: list[dict[str, Any]]) -> float:
        """The chance baseline's F1 (fraction) on these rows' test examples: the majority class of the
        training split (classification) or the mean of random taggings (NER), as evaluation recorded it."""
        baselines = self.records[rows[0]["run_id"]]["metrics"]["baselines"][rows[0]["eval"]]
        return float(next(iter(baselines.values()))["overall"]["f1"])


def _evaluate(claim: PaperClaim, comparison: Comparison, runs: _Runs, dataset: str, resamples: int, seed: int,
              ) -> ClaimRow | None:
    for group in comparison.groups:
        sides = [runs.side_rows(side, dataset, group) for _, side in comparison.terms]
        if all(sides):
            break
    else:
        return None
    terms = []
    for (weight, _), rows in zip(comparison.terms, sides, strict=True):
        examples = runs.examples(rows)
        if examples is None:
            return ClaimRow(claim.text, dataset, comparison.text(), group, verdict="no predictions")
        terms.append((float(weight), examples))
    constant = -runs.chance(sides[0]) if comparison.minus_chance else 0.0
    iv = stats.contrast_bootstrap(terms, resamples, seed, constant=constant)
    low, high = 100 * iv.low, 100 * iv.high
    seeds = " / ".join(str(len(rows)) for rows in sides)
    verdict = _verdict(low, high, claim.near)
    for index in comparison.above_chance:
        f1 = 100 * float(np.mean([examples.full() for examples in terms[index][1]]))
        chance = 100 * runs.chance(sides[index])
        if f1 - chance < NEAR_CHANCE_POINTS:
            verdict = (f"inconclusive at this scale: {comparison.terms[index][1].label()} stays at chance "
                       f"(F1 {f1:.2f} vs {chance:.2f}), so it has no room to lose")
            break
    return ClaimRow(claim.text, dataset, comparison.text(), group, 100 * iv.difference, low, high, seeds, verdict)


def paper_claim_rows(grids: dict[str, list[dict[str, Any]]], resamples: int | None = None, seed: int | None = None,
                     datasets: Sequence[str] = DATASETS) -> list[ClaimRow]:
    """One row per (paper claim, dataset): the first comparison the store's grids can evaluate decides it."""
    resamples = stats.DEFAULT_RESAMPLES if resamples is None else resamples
    seed = stats.DEFAULT_SEED if seed is None else seed
    runs = _Runs(grids)
    out = []
    for claim in PAPER_CLAIMS:
        for dataset in datasets:
            if dataset in claim.not_testable:
                out.append(ClaimRow(claim.text, dataset, verdict=f"not testable here: {claim.not_testable[dataset]}"))
                continue
            row = next((r for c in claim.comparisons if (r := _evaluate(claim, c, runs, dataset, resamples, seed))),
                       None)
            out.append(row or ClaimRow(claim.text, dataset, " or ".join(c.text() for c in claim.comparisons),
                                       verdict="not run"))
    return out


def paper_claims_markdown(rows: list[ClaimRow], resamples: int | None = None) -> str:
    resamples = stats.DEFAULT_RESAMPLES if resamples is None else resamples
    lines = markdown_rows(HEADER, rows)
    note = (f"\nDifference: the comparison's F1 points (seed means; seeds per side in *seeds*); 95 % CI: paired "
            f"bootstrap over the shared test examples, stratified by language ({resamples} resamples). "
            "reproduced: the interval lies on the claim's side of 0; not reproduced: on the other side; "
            "inconclusive: it contains 0. \"Near chance\" is read against ±"
            f"{NEAR_CHANCE_POINTS:g} F1 points around the chance baseline (the training split's majority class "
            "for classification, the mean of 30 random taggings for NER, as evaluation recorded it): reproduced "
            "inside, not reproduced beyond. \"Inconclusive at this scale\": a model whose loss the claim is about "
            "stays within that margin of chance even with all the data.\n")
    return "\n".join(lines) + "\n" + note

"""A grid's report: the result tables in the paper's shapes (built in :mod:`polydistill.experiments.tables`:
rows = models/inits, columns = teacher × dataset [× eval group] + Avg, mean ± std over seeds, as Markdown,
CSV and LaTeX), plots, teachers and paper-claims tables; below them the claims table
(the differences the paper's claims rest on, with paired-bootstrap 95 % CIs and a verdict, see
:mod:`polydistill.reporting.stats`); and the named docs blocks that ``--update-docs`` rewrites and
``--check-docs`` compares (:mod:`polydistill.reporting.docs`).

Only the dimensions that vary in a store become row or column labels, so a Table-1 grid gives a
Table-1-shaped table and a §4.2 grid gives the zero-shot table without extra configuration.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from polydistill.errors import PolydistillError
from polydistill.experiments.paper_claims import PAPER_CLAIMS, paper_claim_rows, paper_claims_markdown
from polydistill.experiments.plots import plot_fraction_curves, plot_loss_curves, plot_model_bars
from polydistill.experiments.tables import (
    INIT_ORDER,
    ROW_DIMS,
    build_table,
    flatten,
    long_csv,
    per_language_csv,
    row_sort_key,
    run_examples,
    sortable,
    to_csv,
    to_latex,
    to_markdown,
)
from polydistill.experiments.teachers import teachers_markdown
from polydistill.io import atomic_write_text
from polydistill.reporting import stats
from polydistill.reporting.stats import CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED

# ---------------------------------------------------------------- claims (bootstrap CIs)

CLAIM_MODELS = ("from-teacher", "from-teacher + KD", "copy w/o fine-tuning")  # compared with the teacher


# Claims between cells that differ in one design dimension only (the half-width grid's): (dimension, claim,
# value A, value B) for "A > B"; a value of None matches any non-empty value (an augmentation source).
DIMENSION_CLAIMS = (
    ("width_select", "importance beats uniform", "importance", "uniform"),
    ("objective", "relations beat TinyBERT", "rel", "tinybert"),
    ("objective", "relations add to TinyBERT", "tinybert+rel", "tinybert"),
    ("objective", "TinyBERT adds to relations", "tinybert+rel", "rel"),
    ("unlabelled", "augmentation helps", None, ""),
    ("stages", "two stages help", 2, 1),
    ("hidden", "full width beats half width", "full", 192),
    ("train_languages", "the teacher's languages beat English only", "as teacher", "english"),
    ("fraction", "more data helps", 1.0, 0.1),
)


def _claim_pairs(models: set[str]) -> list[tuple[str, str, str]]:
    """(claim, A, B) for "A > B" among the student rows of one context."""
    pairs = [("KD helps", f"{init} + KD", init) for init in INIT_ORDER]
    pairs.append(("init beats KD", "from-teacher", "from-scratch + KD"))
    for kd in ("", " + KD"):
        pairs.append(("init matters", f"from-teacher{kd}", f"from-scratch{kd}"))
        pairs.append(("init matters", f"from-teacher{kd}", f"from-base{kd}"))
    return [p for p in pairs if p[1] in models and p[2] in models]


@dataclass
class Claim:
    claim: str
    a: str
    b: str
    teacher: str
    dataset: str
    eval: str
    variant: str
    difference: float  # F1 points, A − B (seed means)
    paired: bool = True
    interval: Any = None  # stats.Interval, None without per-example predictions
    n: str = ""
    seeds: str = ""

    @property
    def verdict(self) -> str:
        return self.interval.verdict if self.interval else "no predictions"

    def row(self) -> list[str]:
        ci = f"[{100 * self.interval.low:+.2f}, {100 * self.interval.high:+.2f}]" if self.interval else "–"
        return [f"{self.claim}: {self.a} − {self.b}", self.teacher, self.dataset, self.eval, self.variant,
                f"{self.difference:+.2f}", ci, self.n, self.seeds, "paired" if self.paired else "unpaired",
                self.verdict]

    def to_dict(self) -> dict[str, Any]:
        iv = self.interval
        return {"claim": self.claim, "a": self.a, "b": self.b, "teacher": self.teacher, "dataset": self.dataset,
                "eval": self.eval, "variant": self.variant, "difference": round(self.difference, 4),
                "ci_low": round(100 * iv.low, 4) if iv else None, "ci_high": round(100 * iv.high, 4) if iv else None,
                "n_a": iv.n_a if iv else None, "n_b": iv.n_b if iv else None,
                "seeds_a": iv.seeds_a if iv else None, "seeds_b": iv.seeds_b if iv else None,
                "bootstrap": "paired" if self.paired else "unpaired", "verdict": self.verdict}


CLAIM_HEADER = ["claim", "teacher", "dataset", "eval group", "variant", "difference (F1 points)", "95 % CI",
                "n examples", "seeds", "bootstrap", "verdict"]


def compute_claims(records: list[dict[str, Any]], resamples: int | None = None, seed: int | None = None,
                   ) -> list[Claim]:
    """Every claim of the paper that the rows of ``records`` can test, with bootstrap 95 % CIs:

    - KD helps: ``<init> + KD − <init>`` for each init (from-teacher + KD − from-teacher is the headline);
    - init matters: from-teacher − from-scratch and from-teacher − from-base, with and without KD;
    - teacher > student: teacher − from-teacher (± KD) and teacher − the copy w/o fine-tuning;
    - seen > unseen: per model, eval group ``seen`` − eval group ``unseen`` (different examples: an
      unpaired bootstrap).

    Students are compared within one (teacher, dataset, eval group, layers, hidden, training
    languages, fraction); seeds are averaged (the same resamples for every seed).
    """
    resamples = stats.DEFAULT_RESAMPLES if resamples is None else resamples
    seed = stats.DEFAULT_SEED if seed is None else seed
    rows = flatten(records)
    by_id = {r["run_id"]: r for r in records}
    students = [r for r in rows if r["kind"] == "student"]
    dims = [d for d in ROW_DIMS[1:] if len({r[d] for r in students}) > 1]
    cells: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    teachers: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "teacher":
            teachers[(r["teacher"], r["dataset"], r["eval"])].append(r)
        else:
            cells[(r["teacher"], r["dataset"], r["eval"], tuple(r[d] for d in dims))][r["model"]].append(r)
    decoded: dict[str, Any] = {}
    comparisons = (*_model_comparisons(cells, teachers), *_dimension_comparisons(cells, dims),
                   *_seen_unseen_comparisons(rows, dims))
    return [_claim(c, dims, by_id, decoded, resamples, seed) for c in comparisons]


def _claim(c: _Comparison, dims: list[str], by_id: dict[str, dict[str, Any]], decoded: dict[str, Any],
           resamples: int, seed: int) -> Claim:
    """The claim of one comparison: the difference of the seed means and, where both sides have per-example
    predictions, the bootstrap interval (``decoded``: the examples decoded so far, shared between calls)."""

    def examples(side: list[dict]) -> list | None:
        return run_examples(sorted(side, key=lambda r: (r["seed"], r["run_id"])), by_id, decoded)

    def mean(side: list[dict]) -> float:
        return statistics.fmean(r["f1"] for r in side)

    variant = ", ".join(f"{d.replace('_', ' ')} {v}" for d, v in zip(dims, c.key, strict=True) if v != "")
    claim = Claim(c.claim, c.a_label, c.b_label, c.a[0]["teacher"], c.a[0]["dataset"], c.eval_label, variant,
                  mean(c.a) - mean(c.b), c.paired)
    ex_a, ex_b = examples(c.a), examples(c.b)
    if resamples and ex_a and ex_b:
        boot = stats.paired_bootstrap if c.paired else stats.unpaired_bootstrap
        claim.interval = boot(ex_a, ex_b, resamples, seed)
        claim.difference = 100 * claim.interval.difference
        iv = claim.interval
        claim.n = str(iv.n_a) if c.paired else f"{iv.n_a} / {iv.n_b}"
        claim.seeds = f"{iv.seeds_a} vs {iv.seeds_b}" if c.paired else str(iv.seeds_a)
    else:
        claim.n = "–"
        claim.seeds = f"{len(c.a)} vs {len(c.b)}" if c.paired else str(len(c.a))
    return claim


class _Comparison(NamedTuple):
    """One claimed difference "A > B": its name, labels, the rows of each side, the variant key, eval label."""

    claim: str
    a_label: str
    b_label: str
    a: list[dict]
    b: list[dict]
    key: tuple
    eval_label: str
    paired: bool


def _cell_order(key: tuple) -> tuple:
    """The sort key of a cell (teacher, dataset, eval group, variant values)."""
    return tuple(sortable(k) for k in (*key[:3], *key[3]))


def _model_comparisons(cells: dict[tuple, dict[str, list[dict]]], teachers: dict[tuple, list[dict]],
                       ) -> list[_Comparison]:
    """The comparisons within one cell: the student pairs of :func:`_claim_pairs`, and teacher > student."""
    out = []
    for key in sorted(cells, key=_cell_order):
        models = cells[key]
        teacher, dataset, group, rest = key
        for name, a, b in _claim_pairs(set(models)):
            out.append(_Comparison(name, a, b, models[a], models[b], rest, group, True))
        for model in CLAIM_MODELS:
            if model in models and teachers.get((teacher, dataset, group)):
                out.append(_Comparison("teacher > student", "teacher", model, teachers[(teacher, dataset, group)],
                                       models[model], rest, group, True))
    return out


def _dimension_comparisons(cells: dict[tuple, dict[str, list[dict]]], dims: list[str]) -> list[_Comparison]:
    """The comparisons of :data:`DIMENSION_CLAIMS`: one design dimension at a time, every other dimension (and
    the model row) equal."""
    out = []
    for dim, name, value_a, value_b in DIMENSION_CLAIMS:
        if dim not in dims:
            continue
        at = dims.index(dim)
        for key in sorted(cells, key=_cell_order):
            teacher, dataset, group, rest = key
            if rest[at] == value_b or rest[at] == "" and value_a is None or value_a is not None and rest[at] != value_a:
                continue
            other = cells.get((teacher, dataset, group, (*rest[:at], value_b, *rest[at + 1:])))
            if other is None:
                continue
            for model in sorted(set(cells[key]) & set(other), key=lambda m: row_sort_key((m,))):
                shown = {d: v for d, v in zip(dims, rest, strict=True) if d != dim}
                label = f"{model}, {dim.replace('_', ' ')} "
                out.append(_Comparison(name, label + str(rest[at]), label + str(value_b or "none"), cells[key][model],
                                       other[model], tuple(shown.get(d, "") for d in dims), group, True))
    return out


def _seen_unseen_comparisons(rows: list[dict[str, Any]], dims: list[str]) -> list[_Comparison]:
    """Seen > unseen, per model row (teachers included): different examples, so unpaired."""
    by_model: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        rest = tuple(r[d] for d in dims) if r["kind"] != "teacher" else tuple("" for _ in dims)
        by_model[(r["teacher"], r["dataset"], r["model"], rest)][r["eval"]].append(r)
    out = []
    for (_, _, model, rest), groups in sorted(
            by_model.items(), key=lambda kv: (*[sortable(k) for k in kv[0][:2]], row_sort_key((kv[0][2],)),
                                              *[sortable(k) for k in kv[0][3]])):
        if groups.get("seen") and groups.get("unseen"):
            out.append(_Comparison("seen > unseen", model, model, groups["seen"], groups["unseen"], rest,
                                   "seen − unseen", False))
    return out


def _claim_columns(claims: list[Claim]) -> list[int]:
    """Indices of the CLAIM_HEADER columns to show (teacher / variant only when they vary)."""
    drop = set()
    if len({c.teacher for c in claims}) <= 1:
        drop.add(1)
    if not any(c.variant for c in claims):
        drop.add(4)
    return [i for i in range(len(CLAIM_HEADER)) if i not in drop]


def claims_markdown(claims: list[Claim], resamples: int | None = None) -> str:
    """The claims table (Markdown) and a note on how to read it."""
    resamples = DEFAULT_RESAMPLES if resamples is None else resamples
    if not claims:
        return "No claim applies: the report has no pair of rows that the paper's claims compare.\n"
    cols = _claim_columns(claims)
    lines = ["| " + " | ".join(CLAIM_HEADER[i] for i in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(c.row()[i] for i in cols) + " |" for c in claims]
    note = (f"Difference = A − B of the seed-averaged test F1; 95 % CI from {resamples} bootstrap resamples of the "
            "test examples, stratified by language (paired: the same resamples for both models and all seeds; "
            "unpaired: seen and unseen are different examples, each resampled on its own). supported / "
            "contradicted: the interval excludes 0 in / against the claimed direction; inconclusive: it "
            "contains 0.")
    if any(c.interval is None for c in claims):
        note += " no predictions: a run's result has no per-example predictions (re-run it), so no interval."
    return "\n".join(lines) + "\n\n" + note + "\n"


def claims_csv(claims: list[Claim]) -> str:
    buf = io.StringIO()
    fields = ["claim", "a", "b", "teacher", "dataset", "eval", "variant", "difference", "ci_low", "ci_high", "n_a",
              "n_b", "seeds_a", "seeds_b", "bootstrap", "verdict"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for c in claims:
        writer.writerow({k: ("" if v is None else v) for k, v in c.to_dict().items()})
    return buf.getvalue()


# ---------------------------------------------------------------- writing the report


def _selections(work_dir: str | Path, grid: str | None) -> list[tuple[str, list[dict[str, Any]], str | None]]:
    """(name, records, sub-folder) of each report a work dir gets (see write_report)."""
    from polydistill.experiments.store import open_store

    store = open_store(work_dir, must_exist=True)
    grids = store.grids()
    records = store.records()
    if grid is not None:
        if grid not in grids:
            raise PolydistillError(f"{work_dir} has no grid named {grid!r}; grids there: {', '.join(grids) or 'none'}.")
        ids = set(grids[grid])
        return [(grid, [r for r in records if r["run_id"] in ids], None)]
    if len(grids) > 1:
        return [(name, [r for r in records if r["run_id"] in set(ids)], name) for name, ids in grids.items()]
    return [(next(iter(grids)) if grids else Path(work_dir).resolve().name, records, None)]


def write_report(work_dir: str | Path, out: str | Path | None = None, title: str | None = None,
                 grid: str | None = None, resamples: int | None = None, seed: int | None = None,
                 ) -> dict[str, Path]:
    """Write tables, claims and plots of the finished runs in ``work_dir``; returns the written paths.

    Several grids may share one work dir (and their common runs): with ``grid`` only that grid's
    runs are reported; without it, every grid gets its own report in ``out/<grid>/`` when there are
    several, and the one grid (or all runs) is reported in ``out`` otherwise. ``resamples``: bootstrap
    resamples of the claims table (default 1000; 0 leaves the claims out); ``seed``: its seed.
    Only ``results/`` (and ``grids/``) are read: a copied results store without models is enough.
    """
    out = Path(out) if out else Path(work_dir) / "report"
    written: dict[str, Path] = {}
    selections = _selections(work_dir, grid)
    for name, records, sub in selections:
        files = _write_one(records, out / sub if sub else out, (title if sub is None and title else name),
                           resamples, seed)
        written.update({f"{sub}/{k}" if sub else k: v for k, v in files.items()})
    paper = _paper_claims_block(selections, resamples, seed)
    if paper:
        written["paper_claims"] = atomic_write_text(out / "paper_claims.md", f"# The paper's claims\n\n{paper}")
    eliquare = _eliquare_block(selections, resamples, seed)
    if eliquare:
        written["eliquare_claims"] = atomic_write_text(
            out / "eliquare_claims.md", f"# Singh et al. 2023's claims (language-specific students)\n\n{eliquare}")
    return written


def _eliquare_block(selections: list[tuple[str, list[dict[str, Any]], str | None]], resamples: int | None,
                    seed: int | None) -> str | None:
    """The claims of Singh et al. 2023 (:mod:`polydistill.experiments.eliquare_claims`) and the lm-distilled inits
    when the store holds a language-student grid; None otherwise (or with ``resamples`` 0)."""
    from polydistill.experiments.eliquare_claims import (
        eliquare_claim_rows,
        eliquare_claims_markdown,
        lm_students_markdown,
    )

    grids = {name: records for name, records, _ in selections}
    inits = lm_students_markdown([rec for records in grids.values() for rec in records])
    if resamples == 0 or inits is None:
        return None
    claims = eliquare_claims_markdown(eliquare_claim_rows(grids, resamples, seed), resamples)
    return f"{claims}\nThe lm-distilled inits:\n\n{inits}"


def _paper_claims_block(selections: list[tuple[str, list[dict[str, Any]], str | None]], resamples: int | None,
                        seed: int | None) -> str | None:
    """The paper-claims table (:mod:`polydistill.experiments.paper_claims`) when the store holds a grid it
    reads; None otherwise (or with ``resamples`` 0)."""
    grids = {name: records for name, records, _ in selections}
    read = {side.grid for claim in PAPER_CLAIMS for c in claim.comparisons for _, side in c.terms}
    if resamples == 0 or not read & set(grids):
        return None
    return paper_claims_markdown(paper_claim_rows(grids, resamples, seed), resamples)


def table_block(records: list[dict[str, Any]], rows: list[dict[str, Any]] | None = None) -> str:
    """A grid's Markdown table and its compute time (the sum of its runs' wall times, each measured on
    the machine that ran it): the table of ``table.md`` and of the docs blocks. ``rows``: ``flatten(records)``
    when the caller has it already."""
    rows = flatten(records) if rows is None else rows
    if not rows:
        return "No finished runs yet.\n"
    seconds = sum(rec.get("wall_seconds") or 0.0 for rec in records)
    runs = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    return f"{to_markdown(build_table(rows))}\nWall time: {seconds / 60:.1f} min for {runs}.\n"


def report_blocks(work_dir: str | Path, resamples: int | None = None, seed: int | None = None) -> dict[str, str]:
    """What ``grid report`` shows per grid, as the named blocks of the docs: ``<grid>`` the table,
    ``<grid>:claims`` the claims table, ``<grid>:teachers`` its teachers' dev F1 by step (did they converge?),
    ``paper-claims`` the paper's claims across grids (see :func:`polydistill.reporting.docs.update_docs`)."""
    blocks: dict[str, str] = {}
    selections = _selections(work_dir, None)
    for name, records, _ in selections:
        rows = flatten(records)
        blocks[name] = table_block(records, rows)
        if resamples != 0 and rows:
            blocks[f"{name}:claims"] = claims_markdown(compute_claims(records, resamples, seed), resamples)
        teachers = teachers_markdown(records)
        if teachers:
            blocks[f"{name}:teachers"] = teachers
    paper = _paper_claims_block(selections, resamples, seed)
    if paper:
        blocks["paper-claims"] = paper
    eliquare = _eliquare_block(selections, resamples, seed)
    if eliquare:
        blocks["eliquare-claims"] = eliquare
    return blocks


def _write_one(records: list[dict[str, Any]], out: Path, title: str, resamples: int | None = None,
               seed: int | None = None) -> dict[str, Path]:
    rows = flatten(records)
    table = build_table(rows) if rows else None
    written: dict[str, Path] = {}
    seeds = sorted({r["seed"] for r in rows})
    runs = f"{len(records)} finished run{'s' if len(records) != 1 else ''}"
    caption = (f"{title}: F1 (%) on the test split, mean ± std over seeds {', '.join(map(str, seeds))} ({runs})."
               if len(seeds) > 1 else
               f"{title}: F1 (%) on the test split, seed {seeds[0] if seeds else '–'} ({runs}; one seed: no ±).")
    md = [f"# {title}", "", caption, ""]
    md.append(table_block(records, rows))
    if resamples != 0 and table:
        claims = compute_claims(records, resamples, seed)
        claims_md = claims_markdown(claims, resamples)
        md += ["## Claims", "", claims_md]
        written["claims_md"] = atomic_write_text(out / "claims.md", f"# {title}: claims\n\n{claims_md}")
        written["claims_csv"] = atomic_write_text(out / "claims.csv", claims_csv(claims))
        written["claims_json"] = atomic_write_text(out / "claims.json", json.dumps({
            "resamples": DEFAULT_RESAMPLES if resamples is None else resamples,
            "seed": DEFAULT_SEED if seed is None else seed, "confidence": CONFIDENCE,
            "units": "F1 points (difference, ci_low, ci_high)",
            "claims": [c.to_dict() for c in claims]}, indent=2, ensure_ascii=False) + "\n")
    teachers = teachers_markdown(records)
    if teachers:
        written["teachers"] = atomic_write_text(out / "teachers.md", f"# {title}: teachers\n\n{teachers}")
    written["markdown"] = atomic_write_text(out / "table.md", "\n".join(md))
    if table:
        written["csv"] = atomic_write_text(out / "table.csv", to_csv(table))
        written["latex"] = atomic_write_text(out / "table.tex", to_latex(table, caption))
    written["runs_csv"] = atomic_write_text(out / "runs.csv", long_csv(rows))
    written["per_language_csv"] = atomic_write_text(out / "per_language.csv", per_language_csv(records))
    for path in plot_fraction_curves(rows, out):
        written[path.stem] = path
    for path in plot_model_bars(rows, out):
        written[path.stem] = path
    for path in plot_loss_curves(records, out):
        written[path.stem] = path
    return written

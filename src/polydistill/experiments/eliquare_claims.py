"""The claims of Singh, De Clercq & Lefever 2023 ("Eliquare"), one row per claim, task and language, decided on the
language-student grids of a store (``configs/*/eliquare_*.yaml``) next to the paper's own numbers.

Each claim is a linear contrast of rows of one grid (a row: a model, and for a language-specific student its
variant, the ``lm`` row dimension) read on one language's test split, with the paired bootstrap of the
Privileged-Students claims (:func:`stats.contrast_bootstrap`; seeds averaged; :mod:`.paper_claims`). Kinds:

* ``better`` — the contrast is > 0: reproduced when the 95 % interval lies above 0, not reproduced below, else
  inconclusive;
* ``par`` — "on par or better": reproduced when the interval lies above −``PAR_MARGIN`` F1 points, not
  reproduced when it lies below, else inconclusive;
* ``near`` — "about the same": reproduced inside ±``PAR_MARGIN``, not reproduced when it lies beyond;
* ``faster`` — the lm-distill training time of pre- vs post-distillation VocabReduce (their distillations' train
  seconds, one per language: no interval);
* ``report`` — beyond the paper, no claimed direction: the difference and its interval, nothing decided.

The paper column is the same contrast on the paper's mBERT numbers (Tables 4–7, F1 × 100; Task 1 is read
against MASSIVE intents, Task 2 against MASSIVE slots, the tasks of this reproduction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from polydistill.experiments.paper_claims import Side, _Runs, _verdict
from polydistill.reporting.tables import markdown_rows

PREFIX = "cpu-eliquare-"
TABLE4, TABLE5, TABLE6, TABLE7 = "table4", "table5", "table6", "table7"  # grid name = prefix + table
LANGUAGES = ("fr-FR", "nl-NL", "he-IL", "hi-IN", "sl-SL", "sw-KE")
LOW_RESOURCE = ("sl-SL", "sw-KE")  # the paper's Tables 6–7 (and this reproduction's Table 5 at CPU scale)
DATASETS = ("massive", "massive-slots")
TASK = {"massive": "Task 1", "massive-slots": "Task 2"}
PAR_MARGIN = 2.0  # F1 points: "on par" / "costs nothing" / "near-identical"
LM = "lm-distill"

# The paper's mBERT-teacher numbers (F1 × 100) by row, language and task (Tables 4–7).
_T4 = {  # language: (mBERT, distilmBERT, Eliquare-mBERT) × (Task 1, Task 2)
    "fr-FR": ((89.23, 97.95), (87.73, 97.90), (89.52, 97.92)),
    "he-IL": ((85.12, 96.81), (83.91, 95.97), (85.67, 97.05)),
    "sl-SL": ((93.26, 97.91), (92.68, 97.90), (93.65, 98.22)),
    "nl-NL": ((90.33, 96.23), (88.12, 96.07), (89.70, 96.25)),
    "hi-IN": ((47.44, 96.66), (45.55, 95.97), (50.66, 96.83)),
    "sw-KE": ((86.89, 84.90), (86.66, 84.52), (87.01, 86.32)),
}
_T5 = {  # language: (post, pre) × (Task 1, Task 2)
    "fr-FR": ((89.52, 97.88), (88.81, 98.14)), "he-IL": ((85.65, 97.05), (85.23, 97.35)),
    "sl-SL": ((93.62, 98.19), (94.95, 98.49)), "nl-NL": ((89.64, 96.22), (90.42, 96.34)),
    "hi-IN": ((50.61, 96.82), (49.79, 96.67)), "sw-KE": ((86.91, 86.29), (87.88, 85.22)),
}
_T67 = {  # row: (sl Task 1, sl Task 2, sw Task 1, sw Task 2); the baseline is the pre-distillation student
    "triplet": (94.95, 98.49, 87.88, 85.22), "equal": (94.40, 98.46, 87.66, 85.58),
    "no-mlm": (94.00, 98.37, 86.76, 84.92), "no-ce": (94.11, 98.41, 87.25, 85.20),
    "no-cos": (94.11, 98.43, 87.31, 85.32),
    "tau-0.5": (93.98, 98.43, 87.40, 84.51), "tau-1": (94.21, 98.44, 87.36, 84.68),
    "tau-3": (94.31, 98.42, 87.53, 84.30), "tau-4": (94.27, 98.40, 87.37, 84.92),
}


def paper_value(table: str, key: str, language: str, dataset: str) -> float | None:
    """The paper's F1 × 100 of a row (``key``: teacher, multilingual, a variant name) in one language and task."""
    task = 0 if dataset == "massive" else 1
    if table == TABLE4:
        index = {"teacher": 0, "multilingual": 1, "triplet": 2}.get(key)
        return _T4[language][index][task] if index is not None and language in _T4 else None
    if table == TABLE5:
        # the paper's post-distillation student is its basic one reduced afterwards; pre is its own row
        index = {"vocab-post": 0, "vocab-none": 0, "triplet": 1}.get(key)
        return _T5[language][index][task] if index is not None and language in _T5 else None
    if key in _T67 and language in LOW_RESOURCE:
        return _T67[key][2 * LOW_RESOURCE.index(language) + task]
    return None


@dataclass(frozen=True)
class Term:
    weight: float
    model: str  # teacher | from-base | from-teacher + KD | lm-distill
    variant: str = ""  # the lm row value of a language-specific student
    paper: str = ""  # its row in the paper (paper_value's key)

    def label(self) -> str:
        return f"{self.model} ({self.variant})" if self.variant else self.model


@dataclass(frozen=True)
class EliquareClaim:
    text: str
    table: str
    kind: Literal["better", "par", "near", "faster", "report"]
    terms: tuple[Term, ...]
    languages: tuple[str, ...] = LANGUAGES

    def comparison(self) -> str:
        parts = []
        for i, t in enumerate(self.terms):
            sign = ("" if i == 0 else " + ") if t.weight > 0 else (" − " if i else "−")
            parts.append(f"{sign}{'' if abs(t.weight) == 1 else f'{abs(t.weight):g}·'}{t.label()}")
        return "".join(parts)


def _lm(weight: float, variant: str, paper: str | None = None) -> Term:
    return Term(weight, LM, variant, variant if paper is None else paper)


def _tau(x: str) -> EliquareClaim:
    return EliquareClaim(f"τ = 2 beats τ = {x}", TABLE7, "better", (_lm(1, "triplet"), _lm(-1, f"tau-{x}")),
                         LOW_RESOURCE)


ELIQUARE_CLAIMS = (
    EliquareClaim("Language-specific student on par with or better than its teacher", TABLE4, "par",
                  (_lm(1, "triplet"), Term(-1, "teacher", paper="teacher"))),
    EliquareClaim("Language-specific student beats the same-size multilingual student (distilmBERT row)", TABLE4,
                  "better", (_lm(1, "triplet"), Term(-1, "from-base", paper="multilingual"))),
    # the CPU grid runs the privileged baseline on the low-resource pair only (its baseline_languages)
    EliquareClaim("Beyond the paper: language-specific student vs Privileged Students (task KD)", TABLE4, "report",
                  (_lm(1, "triplet"), Term(-1, "from-teacher + KD")), LOW_RESOURCE),
    EliquareClaim("Pre-distillation VocabReduce costs nothing (vs post-distillation)", TABLE5, "par",
                  (_lm(1, "triplet"), _lm(-1, "vocab-post")), LOW_RESOURCE),
    EliquareClaim("Post-distillation VocabReduce ≈ the unreduced student", TABLE5, "near",
                  (_lm(1, "vocab-post"), _lm(-1, "vocab-none")), LOW_RESOURCE),
    EliquareClaim("Pre-distillation VocabReduce trains faster", TABLE5, "faster",
                  (_lm(1, "triplet"), _lm(-1, "vocab-post")), LOW_RESOURCE),
    EliquareClaim("Removing L_ce hurts (equal weights vs without it)", TABLE6, "better",
                  (_lm(1, "equal"), _lm(-1, "no-ce")), LOW_RESOURCE),
    EliquareClaim("Removing L_cos hurts (equal weights vs without it)", TABLE6, "better",
                  (_lm(1, "equal"), _lm(-1, "no-cos")), LOW_RESOURCE),
    EliquareClaim("Removing L_mlm hurts (equal weights vs without it)", TABLE6, "better",
                  (_lm(1, "equal"), _lm(-1, "no-mlm")), LOW_RESOURCE),
    EliquareClaim("L_mlm matters most (its removal hurts more than the others')", TABLE6, "better",
                  (_lm(0.5, "no-ce"), _lm(0.5, "no-cos"), _lm(-1, "no-mlm")), LOW_RESOURCE),
    _tau("0.5"), _tau("1"), _tau("3"), _tau("4"),
)


@dataclass
class EliquareRow:
    claim: str
    task: str
    language: str
    comparison: str = ""
    difference: float | None = None  # F1 points (faster: the time ratio)
    low: float | None = None
    high: float | None = None
    seeds: str = ""
    verdict: str = "not run"
    paper: str = "–"

    def cells(self) -> list[str]:
        if self.difference is None:
            return [self.claim, self.task, self.language, self.comparison or "–", "–", "–", "–", self.verdict,
                    self.paper]
        if self.low is None or self.high is None:  # a time ratio
            return [self.claim, self.task, self.language, self.comparison, f"×{self.difference:.2f} time", "–",
                    self.seeds, self.verdict, self.paper]
        return [self.claim, self.task, self.language, self.comparison, f"{self.difference:+.2f}",
                f"[{self.low:+.2f}, {self.high:+.2f}]", self.seeds, self.verdict, self.paper]


HEADER = ["claim", "task", "language", "comparison", "difference (F1 points)", "95 % CI", "seeds", "verdict",
          "paper (mBERT teacher)"]


def _decide(kind: str, low: float, high: float) -> str:
    if kind == "better":
        return _verdict(low, high, None)
    if kind == "near":
        return _verdict(low, high, PAR_MARGIN)
    if kind == "par":
        return "reproduced" if low > -PAR_MARGIN else "not reproduced" if high < -PAR_MARGIN else "inconclusive"
    side = "higher" if low > 0 else "lower" if high < 0 else "no difference"
    return f"reported (no claim): {side}"


def _paper(claim: EliquareClaim, language: str, dataset: str) -> str:
    values = [paper_value(claim.table, t.paper, language, dataset) if t.paper else None for t in claim.terms]
    if claim.kind == "faster":
        return "pre-distillation consistently faster (no times given)"
    if any(v is None for v in values):
        return "–"
    diff = sum(t.weight * v for t, v in zip(claim.terms, values, strict=True) if v is not None)
    return f"{diff:+.2f} ({' vs '.join(f'{v:.2f}' for v in values if v is not None)})"


def _sides(runs: _Runs, grid: str, claim: EliquareClaim, dataset: str, language: str) -> list[list[dict[str, Any]]]:
    return [runs.side_rows(Side(grid, t.model, (("lm", t.variant),)), dataset, language) for t in claim.terms]


def _faster(runs: _Runs, grid: str, claim: EliquareClaim, language: str) -> EliquareRow:
    """Pre vs post: the train seconds of each one's distillation (shared by both tasks and every seed)."""
    seconds = []
    for term in claim.terms:
        found = [rec["lm_student"]["lm_distill"]["train_seconds"]
                 for dataset in DATASETS for row in runs.side_rows(Side(grid, term.model, (("lm", term.variant),)),
                                                                   dataset, language)
                 if (rec := runs.records[row["run_id"]]).get("lm_student")]
        if not found:
            return EliquareRow(claim.text, "both", language, claim.comparison(), paper=_paper(claim, language, ""))
        seconds.append(min(found))
    pre, post = seconds
    verdict = "reproduced" if pre < post else "not reproduced"
    return EliquareRow(claim.text, "both", language, f"{claim.comparison()} (lm-distill train seconds "
                       f"{pre:.0f} vs {post:.0f})", pre / post, None, None, "1 / 1", verdict,
                       _paper(claim, language, ""))


def eliquare_claim_rows(grids: dict[str, list[dict[str, Any]]], resamples: int | None = None,
                        seed: int | None = None, prefix: str = PREFIX) -> list[EliquareRow]:
    """One row per (claim, task, language) of the claim; ``grids``: records by grid name (``prefix`` + table)."""
    from polydistill.reporting import stats

    resamples = stats.DEFAULT_RESAMPLES if resamples is None else resamples
    seed = stats.DEFAULT_SEED if seed is None else seed
    runs = _Runs(grids)
    out = []
    for claim in ELIQUARE_CLAIMS:
        grid = prefix + claim.table
        for language in claim.languages:
            if claim.kind == "faster":
                out.append(_faster(runs, grid, claim, language))
                continue
            for dataset in DATASETS:
                task = f"{dataset} ({TASK[dataset]})"
                row = EliquareRow(claim.text, task, language, claim.comparison(),
                                  paper=_paper(claim, language, dataset))
                sides = _sides(runs, grid, claim, dataset, language)
                if not all(sides):
                    out.append(row)
                    continue
                terms = []
                for term, rows in zip(claim.terms, sides, strict=True):
                    examples = runs.examples(rows)
                    if examples is None:
                        break
                    terms.append((float(term.weight), examples))
                else:
                    iv = stats.contrast_bootstrap(terms, resamples, seed)
                    row.difference, row.low, row.high = 100 * iv.difference, 100 * iv.low, 100 * iv.high
                    row.seeds = " / ".join(str(len(rows)) for rows in sides)
                    row.verdict = _decide(claim.kind, row.low, row.high)
                    out.append(row)
                    continue
                row.verdict = "no predictions"
                out.append(row)
    return out


def eliquare_claims_markdown(rows: Sequence[EliquareRow], resamples: int | None = None) -> str:
    from polydistill.reporting import stats

    resamples = stats.DEFAULT_RESAMPLES if resamples is None else resamples
    lines = markdown_rows(HEADER, rows)
    note = (f"\nDifference: the comparison's F1 points on the language's test split (seed means; runs per side in "
            f"*seeds*; the teacher is trained once); 95 % CI: paired bootstrap over the shared test examples "
            f"({resamples} resamples). better: reproduced when the interval lies above 0, not reproduced below; "
            f"on par / costs nothing: reproduced above −{PAR_MARGIN:g} points, not reproduced below; ≈: reproduced "
            f"inside ±{PAR_MARGIN:g}; otherwise inconclusive. Trains faster: the ratio of the lm-distill train "
            "seconds (pre / post; one distillation per language, shared by both tasks and all seeds). Paper: the "
            "same contrast on Singh et al. 2023's mBERT rows (Task 1 ↔ MASSIVE intents, Task 2 ↔ MASSIVE slots; "
            "their tasks were sentiment / news genre / NER and UD POS).\n")
    return "\n".join(lines) + "\n" + note


def lm_students_markdown(records: Sequence[dict[str, Any]]) -> str | None:
    """One row per distinct lm-distilled init of the records: its corpus, vocabulary, the MLM-head fit of a
    head-less teacher (held-out MLM loss of the fresh and of the kept head against the uniform ln |V|) and the
    distillation; None when none."""
    seen: dict[str, dict[str, Any]] = {}
    for rec in records:
        info = rec.get("lm_student")
        if info:
            seen.setdefault(info["init_dir"], info)
    if not seen:
        return None
    lines = ["| language | variant | corpus lines | vocabulary | teacher MLM head (held-out loss: fresh → fitted, uniform) | "
             "best val loss | lm-distill train s |", "|---|---|---|---|---|---|---|"]
    for info in sorted(seen.values(), key=lambda i: (i["language"], i["variant"])):
        lm, vocab = info["lm_distill"], info.get("vocab_reduction")
        fit = lm.get("teacher_head_fit") or {}
        head = lm.get("teacher_head", "?")
        if fit:
            head = (f"{head}: {fit.get('mlm_loss_first', float('nan')):.2f} → {fit.get('mlm_loss_last', float('nan')):.2f}"
                    f", {lm['uniform_mlm_loss']:.2f}")
        size = f"{vocab['vocab_before']:,} → {vocab['vocab_after']:,} ({info['vocab']})" if vocab else \
            f"{lm['vocab_size']:,}"
        lines.append(f"| {info['language']} | {info['variant']} | {info['corpus']['lines']:,} | {size} | {head} | "
                     f"{lm['best_val_loss']:.3f} | {lm['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"

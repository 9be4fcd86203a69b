"""The rows of a grid's results and the tables built from them: runs flattened into one row per (run, eval
group), the labels of models and languages, the result table in the paper's shapes (rows = models/inits,
columns = teacher × dataset [× eval group] + Avg; mean ± std over seeds) as Markdown, CSV and LaTeX, the long
CSVs, and the per-example test predictions of a row's run (for the bootstrap). Used by the report
(:mod:`polydistill.experiments.report`), the plots, the teachers table and the paper-claims table; it imports
none of them."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from polydistill.reporting.tables import latex_escape

INIT_ORDER = {"from-scratch": 0, "from-base": 1, "from-teacher": 2}
ROW_DIMS = ("model", "layers", "hidden", "intermediate", "width_select", "objective", "unlabelled", "stages",
            "train_languages", "fraction", "lm")
COL_DIMS = ("teacher", "dataset", "eval")


def languages_label(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)


def model_label(spec: dict[str, Any]) -> str:
    if spec["kind"] == "teacher":
        return "teacher"
    if spec["kind"] == "copy":
        return "copy w/o fine-tuning"
    return f"{spec['init']} + KD" if spec.get("kd") else spec["init"]


def flatten(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, eval group), F1 in percent."""
    rows = []
    for rec in records:
        spec = rec["spec"]
        for group, scores in rec["metrics"]["groups"].items():
            rows.append({
                "run_id": rec["run_id"],
                "kind": spec["kind"],
                "model": model_label(spec),
                "init": spec.get("init") or "",
                "kd": bool(spec.get("kd")),
                "teacher": spec["teacher"],
                "dataset": spec["dataset"],
                "layers": spec.get("layers") or "",
                "hidden": spec.get("hidden") or "full",  # None: the teacher's width
                "intermediate": spec.get("intermediate") or "",
                # a teacher has no width selection (it is not a copy); a student without one was copied uniformly
                "width_select": "" if spec["kind"] == "teacher" else spec.get("width_select") or "uniform",
                "objective": spec.get("objective") or "",
                "unlabelled": spec.get("unlabelled") or "",
                "stages": "" if spec["kind"] == "teacher" else spec.get("stages") or 1,
                # relative to the teacher, so datasets with different language codes share rows
                "train_languages": "as teacher" if spec["train_languages"] == spec.get("teacher_train_languages")
                else languages_label(spec["train_languages"]),
                "fraction": spec.get("fraction", 1.0),
                "lm": (spec.get("lm") or {}).get("variant") or "",  # a language-specific student's recipe
                "seed": spec["seed"],
                "eval": group,
                "f1": 100.0 * scores["f1"],
                "wall_seconds": rec.get("wall_seconds"),
            })
    return rows


def sortable(value: Any) -> tuple:
    return (0, float(value), "") if isinstance(value, int | float) and not isinstance(value, bool) else (1, 0.0, str(value))


def row_sort_key(key: tuple) -> tuple:
    """teacher, copy, then students by init (scratch, base, teacher), other dims, KD last."""
    model = key[0]
    if model == "teacher":
        rank = (0, 0)
    elif model.startswith("copy"):
        rank = (1, 0)
    else:
        rank = (2, INIT_ORDER.get(model.removesuffix(" + KD"), 9))
    return (*rank, *[sortable(k) for k in key[1:]], model.endswith("+ KD"))


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self, digits: int = 2) -> str:
        if len(self.values) > 1:
            return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"
        return f"{self.mean:.{digits}f}"


@dataclass
class Table:
    row_dims: list[str]
    col_dims: list[str]
    rows: list[tuple]
    cols: list[tuple]
    cells: dict[tuple[tuple, tuple], Cell]

    def avg_groups(self) -> dict[str, list[tuple]]:
        """Avg columns: over all columns, or one per eval group when groups differ (all vs unseen)."""
        if "eval" in self.col_dims:
            at = self.col_dims.index("eval")
            by_group: dict[str, list[tuple]] = defaultdict(list)
            for col in self.cols:
                by_group[str(col[at])].append(col)
            return {f"Avg {g}": cols for g, cols in by_group.items() if len(cols) > 1}
        return {"Avg": list(self.cols)} if len(self.cols) > 1 else {}

    def averages(self) -> dict[tuple, dict[str, float | None]]:
        """Mean of the row's column means per Avg column (only when the row has all those columns)."""
        out: dict[tuple, dict[str, float | None]] = {}
        for row in self.rows:
            out[row] = {}
            for label, cols in self.avg_groups().items():
                means = [self.cells[(row, col)].mean for col in cols if (row, col) in self.cells]
                out[row][label] = statistics.fmean(means) if len(means) == len(cols) else None
        return out

    def header(self) -> list[str]:
        cols = [" / ".join(str(c) for c in col) for col in self.cols]
        return [*self.row_dims, *cols, *self.avg_groups()]

    def body(self, digits: int = 2) -> list[list[str]]:
        avgs = self.averages()
        lines = []
        for row in self.rows:
            cells = [self.cells[(row, col)].text(digits) if (row, col) in self.cells else "–" for col in self.cols]
            avg = [f"{v:.{digits}f}" if v is not None else "–" for v in avgs[row].values()]
            lines.append([str(r) for r in row] + cells + avg)
        return lines


def build_table(rows: list[dict[str, Any]]) -> Table:
    """Group runs by the varying row/column dimensions; seeds are averaged."""
    # a dimension is shown when it varies among the students (teachers have no layers/fraction)
    students = [r for r in rows if r["kind"] == "student"] or rows
    varying = {d for d in ROW_DIMS if len({r[d] for r in students}) > 1}
    varying |= {d for d in COL_DIMS if len({r[d] for r in rows}) > 1}
    row_dims = ["model", *[d for d in ROW_DIMS[1:] if d in varying]]
    col_dims = [d for d in COL_DIMS if d in varying or d == "dataset"]
    cells: dict[tuple[tuple, tuple], Cell] = defaultdict(Cell)
    for r in rows:
        cells[(tuple(r[d] for d in row_dims), tuple(r[d] for d in col_dims))].values.append(r["f1"])
    row_keys = sorted({k[0] for k in cells}, key=row_sort_key)
    col_keys = sorted({k[1] for k in cells}, key=lambda c: tuple(sortable(x) for x in c))
    return Table(row_dims, col_dims, row_keys, col_keys, dict(cells))


def to_markdown(table: Table, title: str = "") -> str:
    header = table.header()
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(line) + " |" for line in table.body()]
    return "\n".join(lines) + "\n"


def to_latex(table: Table, caption: str = "") -> str:
    header = table.header()
    spec = "l" * len(table.row_dims) + "r" * (len(header) - len(table.row_dims))
    lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(latex_escape(c) for c in line) + r" \\" for line in table.body()]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Wide CSV: the row dims, then mean/std/n per column, then Avg."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = [" / ".join(str(c) for c in col) for col in table.cols]
    writer.writerow([*table.row_dims, *[f"{n} {s}" for n in names for s in ("mean", "std", "n")],
                     *table.avg_groups()])
    avgs = table.averages()
    for row in table.rows:
        values: list[Any] = list(row)
        for col in table.cols:
            cell = table.cells.get((row, col))
            values += [f"{cell.mean:.4f}", f"{cell.std:.4f}", len(cell.values)] if cell else ["", "", 0]
        values += [f"{v:.4f}" if v is not None else "" for v in avgs[row].values()]
        writer.writerow(values)
    return buf.getvalue()


def long_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in sorted(rows, key=lambda r: (r["run_id"], r["eval"])):
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and not math.isnan(v) else v) for k, v in r.items()})
    return buf.getvalue()


def per_language_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["run_id", "model", "teacher", "dataset", "seed", "language", "f1", "support"])
    for rec in sorted(records, key=lambda r: r["run_id"]):
        spec = rec["spec"]
        for lang, scores in sorted(rec["metrics"].get("per_language", {}).items()):
            writer.writerow([rec["run_id"], model_label(spec), spec["teacher"], spec["dataset"], spec["seed"], lang,
                             f"{100 * scores['f1']:.4f}", scores.get("support", "")])
    return buf.getvalue()


def run_examples(rows: list[dict[str, Any]], by_id: dict[str, dict[str, Any]], decoded: dict[str, Any]) -> list | None:
    """The test examples (:class:`stats.GroupExamples`) of each flattened row, in order; None when a run has no
    per-example predictions for its eval group. ``decoded``: a cache of decoded predictions by run id."""
    from polydistill.experiments.store import decode_predictions
    from polydistill.reporting import stats

    out = []
    for r in rows:
        if r["run_id"] not in decoded:
            decoded[r["run_id"]] = decode_predictions(by_id[r["run_id"]])
        got = decoded[r["run_id"]]
        if got is None or r["eval"] not in got[2]:
            return None
        task, names, groups = got
        out.append(stats.group_examples(task, names, groups[r["eval"]], label=by_id[r["run_id"]].get(
            "label", r["model"]), group=r["eval"]))
    return out


"""The paper's figures as PNGs: F1 versus data fraction per init (Figure 2) and training-loss
curves per init and fraction (Figure 3)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from polydistill.experiments.tables import build_table, model_label
from polydistill.reporting.plots import pyplot, save_figure


def _slug(*parts: Any) -> str:
    return "_".join(str(p).replace("/", "-").replace(" ", "") for p in parts)


def plot_fraction_curves(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """Figure 2: one PNG per (teacher, dataset, eval group) when students ran at >1 data fraction."""
    students = [r for r in rows if r["kind"] == "student"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in students:
        groups[(r["teacher"], r["dataset"], r["eval"])].append(r)
    written = []
    for (teacher, dataset, group), items in sorted(groups.items()):
        if len({r["fraction"] for r in items}) < 2:
            continue
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4))
        lines: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in items:
            lines[r["model"]][r["fraction"]].append(r["f1"])
        for label, points in sorted(lines.items()):
            xs = sorted(points)
            means = [statistics.fmean(points[x]) for x in xs]
            stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
            ax.errorbar([100 * x for x in xs], means, yerr=stds, marker="o", capsize=3, label=label)
        ax.set_xlabel("training data (%)")
        ax.set_ylabel(f"F1 (%), {group} test languages")
        ax.set_title(f"{teacher} / {dataset}: F1 vs data fraction")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(save_figure(plt, fig, out / f"fig2_f1_vs_fraction_{_slug(teacher, dataset, group)}.png"))
    return written


def _mean_curve(curves: list[list[list[float]]]) -> tuple[list[float], list[float]]:
    """Average loss per step over seeds (steps logged by only some seeds are averaged over those)."""
    by_step: dict[float, list[float]] = defaultdict(list)
    for curve in curves:
        for step, loss in curve:
            by_step[step].append(loss)
    steps = sorted(by_step)
    return steps, [statistics.fmean(by_step[s]) for s in steps]


def plot_loss_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """Figure 3: one PNG per (teacher, dataset), one panel per data fraction, one line per init."""
    groups: dict[tuple, dict[float, dict[str, list]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for rec in records:
        spec = rec["spec"]
        if spec["kind"] != "student" or not rec.get("loss_curve"):
            continue
        groups[(spec["teacher"], spec["dataset"])][spec.get("fraction", 1.0)][model_label(spec)].append(rec["loss_curve"])
    written = []
    for (teacher, dataset), by_fraction in sorted(groups.items()):
        plt = pyplot()
        fractions = sorted(by_fraction)
        fig, axes = plt.subplots(1, len(fractions), figsize=(4.2 * len(fractions), 3.6), squeeze=False)
        for ax, fraction in zip(axes[0], fractions, strict=True):
            for label, curves in sorted(by_fraction[fraction].items()):
                steps, losses = _mean_curve(curves)
                ax.plot(steps, losses, label=label)
            ax.set_title(f"{100 * fraction:g}% of the data")
            ax.set_xlabel("step")
            ax.set_ylabel("training loss")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{teacher} / {dataset}: training loss per step")
        written.append(save_figure(plt, fig, out / f"fig3_loss_curves_{_slug(teacher, dataset)}.png"))
    return written


def plot_model_bars(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """F1 per model (mean over seeds), one bar per eval group: e.g. seen vs unseen languages."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["teacher"], r["dataset"])].append(r)
    written = []
    for (teacher, dataset), items in sorted(groups.items()):
        table = build_table(items)
        evals = sorted({r["eval"] for r in items})
        labels = [" ".join(str(k) for k in row if k != "") for row in table.rows]
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(labels), 4))
        width = 0.8 / len(evals)
        for j, group in enumerate(evals):
            means, stds = [], []
            for row in table.rows:
                cells = [c for (rk, ck), c in table.cells.items() if rk == row and group in ck] or \
                    [c for (rk, _), c in table.cells.items() if rk == row and len(evals) == 1]
                means.append(cells[0].mean if cells else 0.0)
                stds.append(cells[0].std if cells else 0.0)
            xs = [i + (j - (len(evals) - 1) / 2) * width for i in range(len(labels))]
            bars = ax.bar(xs, means, width, yerr=stds, capsize=3, label=f"{group} languages")
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("F1 (%)")
        ax.set_title(f"{teacher} / {dataset}")
        ax.legend(fontsize=8)
        written.append(save_figure(plt, fig, out / f"f1_by_model_{_slug(teacher, dataset)}.png"))
    return written

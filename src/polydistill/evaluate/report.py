"""Presenting an :class:`EvalReport`: a rich table for the terminal and an atomic JSON file."""

from __future__ import annotations

import os
from pathlib import Path

from polydistill.evaluate.evaluate import EvalReport
from polydistill.io import atomic_write_json, package_versions


def write_report(report: EvalReport, path: str | os.PathLike) -> Path:
    payload = report.to_dict()
    payload["versions"] = package_versions()
    return atomic_write_json(path, payload)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def report_table(report: EvalReport):
    """One row per language, then the seen / unseen groups and the overall row (F1 and accuracy in %)."""
    from rich.table import Table

    metric = "macro-F1" if report.task == "sequence" else "seqeval F1"
    name, baseline = ("majority", "majority") if report.task == "sequence" else ("random", "random ×30")
    base = report.baselines.get(name, {})
    base_lang = base.get("per_language", {})
    # the paper's Table 6 "random score" for classification is the majority class's accuracy
    base_key = "accuracy" if report.task == "sequence" else "f1"
    table = Table(title=f"{report.model} on {report.dataset} {report.split} ({metric}, %)")
    table.add_column("language")
    table.add_column("support", justify="right")
    table.add_column(metric, justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column(f"{baseline} {'acc' if base_key == 'accuracy' else 'F1'}", justify="right")
    for lang, scores in report.per_language.items():
        table.add_row(lang, str(scores["support"]), _pct(scores["f1"]), _pct(scores["accuracy"]),
                      _pct(base_lang.get(lang, {}).get(base_key)))
    table.add_section()
    for group, pooled in report.groups.items():
        table.add_row(f"{group} ({len(pooled['languages'])})", str(pooled["support"]), _pct(pooled["f1"]),
                      _pct(pooled["accuracy"]), "")
    overall = report.overall
    table.add_row("overall", str(overall["support"]), _pct(overall["f1"]), _pct(overall["accuracy"]),
                  _pct(base.get("overall", {}).get(base_key)), style="bold")
    return table

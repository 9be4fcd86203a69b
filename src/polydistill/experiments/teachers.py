"""Did each teacher of a store converge? Its dev F1 at every evaluation during fine-tuning.

A teacher that is still improving makes KD look useless (the student imitates an under-trained model),
so the reproduction's teachers must have stopped improving: a teacher counts as **still rising** when its
last evaluation beats the best earlier one by more than ``RISING_POINTS`` F1 points (less is within the
noise of a few hundred dev examples), and as **converged** otherwise.
"""

from __future__ import annotations

from typing import Any

from polydistill.experiments.tables import languages_label

RISING_POINTS = 1.0


def convergence(curve: list[list[float]]) -> str:
    """``converged`` / ``still rising`` for a (step, dev F1 fraction) curve; ``one evaluation`` or
    ``not recorded`` when it cannot tell."""
    if not curve:
        return "not recorded"
    if len(curve) < 2:
        return "one evaluation"
    last = 100 * curve[-1][1]
    best_before = 100 * max(f1 for _, f1 in curve[:-1])
    return "still rising" if last - best_before > RISING_POINTS else "converged"


def teachers_markdown(records: list[dict[str, Any]]) -> str | None:
    """One row per teacher run of ``records`` (None when there is none)."""
    teachers = sorted((r for r in records if r["spec"]["kind"] == "teacher"),
                      key=lambda r: (r["spec"]["dataset"], languages_label(r["spec"]["train_languages"])))
    if not teachers:
        return None
    lines = ["| teacher | dataset | training languages | dev F1 by step | verdict | wall time |",
             "|---|---|---|---|---|---|"]
    for rec in teachers:
        spec, curve = rec["spec"], rec.get("dev_curve") or []
        steps = ", ".join(f"{int(step)}: {100 * f1:.2f}" for step, f1 in curve) or "–"
        minutes = f"{rec['wall_seconds'] / 60:.1f} min" if rec.get("wall_seconds") else "–"
        lines.append(f"| {spec['teacher']} | {spec['dataset']} | {languages_label(spec['train_languages'])} | "
                     f"{steps} | {convergence(curve)} | {minutes} |")
    note = (f"\nStill rising: the last evaluation beats the best earlier one by more than {RISING_POINTS:g} F1 "
            "point(s) on the dev split; converged otherwise.\n")
    return "\n".join(lines) + "\n" + note

"""The teachers' convergence table: dev F1 at every evaluation, and whether it had stopped rising."""

from __future__ import annotations

from polydistill.experiments.runner import dev_curve
from polydistill.experiments.teachers import RISING_POINTS, convergence, teachers_markdown


def test_dev_curve_keeps_each_evaluation_once():
    history = [{"loss": 1.0, "step": 10}, {"eval_f1": 0.5, "eval_loss": 1.0, "step": 100},
               {"eval_f1": 0.6, "step": 200}, {"eval_f1": 0.62, "step": 300},
               {"eval_f1": 0.61, "step": 300}]  # the final re-evaluation of the best checkpoint
    assert dev_curve(history) == [[100.0, 0.5], [200.0, 0.6], [300.0, 0.62]]
    assert dev_curve([{"loss": 1.0, "step": 1}]) == []


def test_convergence_reads_the_last_gain_against_the_margin():
    assert convergence([[100, 0.50], [200, 0.60], [300, 0.63]]) == "still rising"  # +3 points
    assert convergence([[100, 0.50], [200, 0.60], [300, 0.605]]) == "converged"  # +0.5 < margin
    assert convergence([[100, 0.50], [200, 0.62], [300, 0.60]]) == "converged"  # fell back
    assert convergence([[300, 0.6]]) == "one evaluation" and convergence([]) == "not recorded"
    assert RISING_POINTS == 1.0


def test_teachers_markdown_lists_teachers_only():
    spec = {"kind": "teacher", "teacher": "e5-small", "dataset": "tsm", "train_languages": ["english", "german"]}
    records = [{"spec": spec, "dev_curve": [[100, 0.5], [200, 0.61]], "wall_seconds": 270.0},
               {"spec": {**spec, "kind": "student"}, "dev_curve": [[100, 0.1]]},
               {"spec": {**spec, "dataset": "massive"}, "wall_seconds": 60.0}]
    md = teachers_markdown(records)
    assert "| e5-small | tsm | english,german | 100: 50.00, 200: 61.00 | still rising | 4.5 min |" in md
    assert "| e5-small | massive | english,german | – | not recorded | 1.0 min |" in md
    assert md.count("\n| e5-small") == 2 and md.index("massive") < md.index("| tsm")  # sorted, students left out
    assert teachers_markdown([records[1]]) is None

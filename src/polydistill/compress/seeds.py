"""Retention over several ``polydistill compress`` runs of one teacher (``polydistill compress-seeds``).

One run's report card gives one seed's retention; a quality claim should carry more than one seed. This
reads the finished runs' evaluate-stage predictions (``stages/*-evaluate/NAME.json``), checks that they
are seeds of one recipe — the same teacher predictions on the same test examples, different ``--seed`` —
and reports, per group of the report (seen / unseen / all), the seed-averaged student F1 ÷ the teacher's
F1 with a paired-bootstrap 95 % interval over the test examples, against the runs' retention targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polydistill.compress.plan import settings_identity
from polydistill.compress.records import Evaluation, Report
from polydistill.compress.report import RETENTION_TARGETS, group_examples, retention_interval
from polydistill.compress.stages import MODEL_TITLES
from polydistill.errors import PolydistillError, require
from polydistill.io import read_record
from polydistill.reporting.stats import paired_bootstrap

MODELS = tuple(name for name in MODEL_TITLES if name != "teacher")  # every student a report card scores


def _evaluation(run: Path, name: str) -> dict[str, Any]:
    found = sorted(run.glob(f"stages/*-evaluate/{name}.json"))
    require(found, f"{run} has no evaluation of the {name} model (stages/*-evaluate/{name}.json); finish the "
                   "compress run first (re-run its command: it resumes).")
    return read_record(found[0], Evaluation)


def _load(run: Path, model: str) -> dict[str, Any]:
    require(run.is_dir(), f"{run} is not a directory; pass the --out directories of finished compress runs.")
    report = read_record(run / "report.json", Report) if (run / "report.json").is_file() else None
    require(report is not None, f"{run} has no report.json: it is not a finished compress run (re-run its "
                                "command: it resumes).")
    return {"path": run, "report": report, "teacher": _evaluation(run, "teacher"),
            "student": _evaluation(run, model)}


def _same_teacher(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two runs of one teacher scored on the same test examples (identical teacher predictions and checksums)."""
    return (a["teacher"]["examples"]["pred"] == b["teacher"]["examples"]["pred"]
            and a["teacher"]["examples"]["checksums"] == b["teacher"]["examples"]["checksums"])


def _check_seeds_of_one_recipe(runs: list[dict[str, Any]]) -> None:
    first = runs[0]
    seeds = [r["report"]["settings"].get("seed") for r in runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise PolydistillError(f"seed {repeated[0]} appears in more than one run; each run must be another seed of "
                               "the recipe (the same seed twice is the same run).")
    recipe = {k: v for k, v in settings_identity(first["report"]["settings"]).items() if k != "seed"}
    for other in runs[1:]:
        theirs = {k: v for k, v in settings_identity(other["report"]["settings"]).items() if k != "seed"}
        changed = sorted(k for k in recipe.keys() | theirs.keys() if recipe.get(k) != theirs.get(k))
        if changed:
            raise PolydistillError(f"{first['path']} and {other['path']} differ in {', '.join(changed)}, not only in "
                                   "--seed; retention over seeds averages runs of one command.")
        if other["report"]["quality"]["groups"] != first["report"]["quality"]["groups"]:
            raise PolydistillError(f"{first['path']} and {other['path']} group different languages as seen / "
                                   "unseen; compare runs of one command that differ only in --seed.")
        if not _same_teacher(first, other):
            raise PolydistillError(f"{first['path']} and {other['path']} were compressed from different teachers or "
                                   "scored on different test examples (their teacher predictions differ); retention "
                                   "over seeds needs one teacher and one test split.")


def seeds_retention(run_dirs: Sequence[str | Path], model: str = "int8", resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Seed-averaged retention of ``model`` (one of ``MODELS``) over the compress runs ``run_dirs``."""
    require(model in MODELS, f"--model {model} is not a student of a compress run; choose one of "
                             f"{', '.join(MODELS)}.")
    require(len(run_dirs) >= 2, "Pass at least two compress runs (seeds of one command); one run's retention is "
                                "in its own report.md.")
    runs = [_load(Path(p), model) for p in run_dirs]
    _check_seeds_of_one_recipe(runs)
    settings = runs[0]["report"]["settings"]
    groups = {}
    for group, members in runs[0]["report"]["quality"]["groups"].items():
        teacher = group_examples(runs[0]["teacher"], members, group)
        students = [group_examples(r["student"], members, group) for r in runs]
        interval = retention_interval(teacher, students, resamples, seed)
        target = settings.get(RETENTION_TARGETS[group]) if group in RETENTION_TARGETS else None
        groups[group] = {**interval, "languages": members, "per_seed": [s.full() for s in students],
                         "target": target,
                         "met": None if target is None or interval["retention"] is None else
                         interval["retention"] >= target}
    return {"model": model, "teacher": settings.get("teacher"), "dataset": runs[0]["report"].get("dataset"),
            "runs": [{"path": str(r["path"]), "seed": r["report"]["settings"].get("seed"),
                      "student": (r["report"].get("architecture") or {}).get("name")} for r in runs],
            "groups": groups}


def render_markdown(result: dict[str, Any]) -> str:
    seeds = ", ".join(str(r["seed"]) for r in result["runs"])
    lines = [f"# Retention over seeds {seeds}: {result['model']} student of {result['teacher']} "
             f"({result['dataset']})", "",
             "Test F1 × 100; retention = the seed-averaged student F1 ÷ the teacher's F1 on the same examples, "
             "with its 95 % paired-bootstrap interval over the test examples.", "",
             "| group | examples | teacher | student per seed | student mean | retention [95 % CI] | target | met |",
             "|---|---|---|---|---|---|---|---|"]
    for group, g in result["groups"].items():
        per_seed = " / ".join(f"{100 * f:.2f}" for f in g["per_seed"])
        ci = (f"{100 * g['retention']:.1f} % [{100 * g['low']:.1f}, {100 * g['high']:.1f}]"
              if g["retention"] is not None and g["low"] is not None else "–")
        target = f"≥ {100 * g['target']:.0f} %" if g["target"] is not None else ""
        met = "" if g["met"] is None else "**met**" if g["met"] else "**missed**"
        lines.append(f"| {group} | {g['examples']:,} | {100 * g['teacher_f1']:.2f} | {per_seed} | "
                     f"{100 * g['student_f1']:.2f} | {ci} | {target} | {met} |")
    lines += ["", "Runs: " + "; ".join(f"`{r['path']}` (seed {r['seed']})" for r in result["runs"]), ""]
    return "\n".join(lines)


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"training": {"learning_rate": 5e-4}}`` → ``{"training.learning_rate": 5e-4}``: the setting that differs
    (an empty dict names nothing, so ``{}`` against ``{"att": 0}`` differs only in ``kd_weights.att``)."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def recipe_difference(a_dirs: Sequence[str | Path], b_dirs: Sequence[str | Path], model: str = "int8",
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Recipe A − recipe B: the seed-averaged F1 of ``model`` over the runs ``a_dirs`` minus that over ``b_dirs``
    (each side: seeds of one command), per group, with a paired-bootstrap 95 % interval over the test examples.
    Both sides must come from one teacher scored on the same test examples (the comparison of methods)."""
    require(model in MODELS, f"--model {model} is not a student of a compress run; choose one of "
                             f"{', '.join(MODELS)}.")
    sides = []
    for dirs in (a_dirs, b_dirs):
        require(len(dirs) >= 1, "Pass at least one compress run on each side of the comparison.")
        runs = [_load(Path(p), model) for p in dirs]
        if len(runs) > 1:
            _check_seeds_of_one_recipe(runs)
        sides.append(runs)
    a, b = sides
    first, other = a[0], b[0]
    require(first["report"]["quality"]["groups"] == other["report"]["quality"]["groups"],
            f"{first['path']} and {other['path']} group different languages as seen / unseen; compare recipes "
            "on the same languages.")
    require(_same_teacher(first, other),
            f"{first['path']} and {other['path']} were compressed from different teachers or scored on different "
            "test examples; a paired comparison needs one teacher and one test split.")
    mine = _flat(settings_identity(first["report"]["settings"]))
    theirs = _flat(settings_identity(other["report"]["settings"]))
    differs = {k: [mine.get(k), theirs.get(k)] for k in sorted(mine.keys() | theirs.keys())
               if k != "seed" and mine.get(k) != theirs.get(k)}
    groups = {}
    for group, members in first["report"]["quality"]["groups"].items():
        ga = [group_examples(r["student"], members, group) for r in a]
        gb = [group_examples(r["student"], members, group) for r in b]
        interval = paired_bootstrap(ga, gb, n_resamples=resamples, seed=seed)
        groups[group] = {"languages": members, "examples": ga[0].n, "a": [g.full() for g in ga],
                         "b": [g.full() for g in gb], "difference": interval.difference, "low": interval.low,
                         "high": interval.high, "verdict": interval.verdict}
    return {"model": model, "dataset": first["report"].get("dataset"), "differs": differs,
            "a": [{"path": str(r["path"]), "seed": r["report"]["settings"].get("seed")} for r in a],
            "b": [{"path": str(r["path"]), "seed": r["report"]["settings"].get("seed")} for r in b],
            "groups": groups}


def render_difference(result: dict[str, Any]) -> str:
    differs = "; ".join(f"`{k}`: {v[0]!r} vs {v[1]!r}" for k, v in result["differs"].items()) or "nothing but seeds"
    lines = [f"# Recipe A − recipe B: {result['model']} students ({result['dataset']})", "",
             f"A and B differ in {differs}. Test F1 × 100, seed means; the interval is a 95 % paired bootstrap "
             "over the test examples (every resample applied to every run of both sides).", "",
             "| group | examples | A per seed | B per seed | A − B [95 % CI] | A better? |", "|---|---|---|---|---|---|"]
    for group, g in result["groups"].items():
        per_a = " / ".join(f"{100 * f:.2f}" for f in g["a"])
        per_b = " / ".join(f"{100 * f:.2f}" for f in g["b"])
        lines.append(f"| {group} | {g['examples']:,} | {per_a} | {per_b} | {100 * g['difference']:+.2f} "
                     f"[{100 * g['low']:+.2f}, {100 * g['high']:+.2f}] | {g['verdict']} |")
    lines += ["", "A: " + "; ".join(f"`{r['path']}` (seed {r['seed']})" for r in result["a"]),
              "B: " + "; ".join(f"`{r['path']}` (seed {r['seed']})" for r in result["b"]), ""]
    return "\n".join(lines)


__all__ = ["MODELS", "recipe_difference", "render_difference", "render_markdown", "seeds_retention"]

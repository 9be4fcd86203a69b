"""compress, the report card: ``report.json``, ``report.md`` and the plots, built from the stage records
(``done.json``), the evaluations (``6-evaluate/<model>.json``) and the bench (``7-bench/bench.json``).

* **Quality**: test F1 per language and per group (seen = the teacher's training languages, unseen =
  ``--unseen-languages``, all) of the teacher and every intermediate student, as ``evaluate_model``
  scored them; **retention** = student F1 ÷ teacher F1 with a 95 % paired-bootstrap interval (the test
  examples resampled within each language, the same resamples applied to teacher and student:
  ``polydistill.reporting.stats``).
* **Speed and size**: parameters, disk, latency (batch 1) and throughput (``--bench-batch-size``) per length,
  wall and CPU clock, each as a ratio to the teacher (``bench_models``, interleaved in one process).
* **Targets**: met or missed, by how much; for a missed quality target, which stage costs the quality
  (teacher → vocab reduction → weight copy → KD → int8).
* **Stages**: settings and wall time of each.
* **The final models' cards** (``DIR/model``, ``DIR/model-int8``): the title, targets and quality sections
  appended, and the test F1 in their ``model-index`` (:func:`write_model_cards`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from polydistill.compress.records import Bench, Evaluation
from polydistill.compress.stages import MODEL_TITLES, STAGES, Context, evaluation_file
from polydistill.io import CARD_FILE, atomic_write_json, atomic_write_text, read_record
from polydistill.reporting import stats
from polydistill.reporting.plots import pyplot, save_figure  # the one figure-saving helper
from polydistill.reporting.stats import CONFIDENCE
from polydistill.student.card import public_report, record_test_results

FINAL = "int8"  # the deployable: targets are judged on it
RETENTION_TARGETS = {"seen": "target_retention_seen", "unseen": "target_retention_unseen"}  # group → setting
SHORT_TITLES = {"teacher": "teacher", "vocab": "vocab", "depth": "depth copy", "width": "width copy", "kd": "KD",
                "int8": "int8"}


# ------------------------------------------------------------------------------------------- quality
def _groups(ctx: Context, languages: list[str]) -> dict[str, list[str]]:
    groups = {"seen": [la for la in languages if la in ctx.seen], "unseen": [la for la in languages if la in ctx.unseen]}
    groups = {name: members for name, members in groups.items() if members}
    groups["all"] = list(languages)
    return groups


def _f1(report: dict[str, Any], members: list[str]) -> float | None:
    """F1 of a group as evaluate_model scored it (pooled examples; one language: its own score)."""
    if len(members) == 1:
        return (report["per_language"].get(members[0]) or {}).get("f1")
    if set(members) == set(report["languages"]):
        return report["overall"].get("f1")
    for group in report.get("groups", {}).values():
        if sorted(group.get("languages", [])) == sorted(members):
            return group.get("f1")
    return None


def group_examples(evaluation: dict[str, Any], members: list[str], group: str):
    """The test predictions of one evaluate-stage file (``stages/*-evaluate/NAME.json``) on the languages
    ``members``, as the bootstrap's :class:`~polydistill.reporting.stats.GroupExamples`."""
    ex, task, label_names = evaluation["examples"], evaluation["report"]["task"], evaluation["report"]["label_names"]
    per_language = []
    for lang in members:
        idx = [i for i, la in enumerate(ex["languages"]) if la == lang]
        gold: Any = [ex["true"][i] for i in idx]  # NER: one array per sentence; classification: one array
        pred: Any = [ex["pred"][i] for i in idx]
        if task == "sequence":
            gold, pred = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
        else:
            gold, pred = [np.asarray(r, dtype=np.int64) for r in gold], [np.asarray(r, dtype=np.int64) for r in pred]
        per_language.append(stats.LanguagePredictions(lang, ex["checksums"][lang], gold, pred))
    return stats.group_examples(task, label_names, per_language, label=evaluation["name"], group=group)


def retention_interval(teacher, students, resamples: int, seed: int = 0) -> dict[str, float | None]:
    """Student F1 ÷ teacher F1 on the same examples and its paired-bootstrap percentile interval.
    ``students``: one run's examples, or several runs' (seeds of one recipe), whose F1 is averaged on every
    resample (the seed-averaged F1 over resampled test examples, as the grid's claims tables do)."""
    students = [students] if isinstance(students, stats.GroupExamples) else list(students)
    stats.check_paired([teacher, *students])
    t_full = teacher.full()
    s_full = float(np.mean([student.full() for student in students]))
    rng = np.random.default_rng(seed)
    ratios = []
    for weights in stats.resample_counts(teacher.sizes, resamples, rng):
        t = teacher.scores(weights)
        s = np.mean([student.scores(weights) for student in students], axis=0)
        ratios.append(np.divide(s, t, out=np.full_like(s, np.nan), where=t > 0))
    values = np.concatenate(ratios)
    values = values[np.isfinite(values)]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = (np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan))
    return {"retention": s_full / t_full if t_full > 0 else None, "low": float(low) if np.isfinite(low) else None,
            "high": float(high) if np.isfinite(high) else None, "teacher_f1": t_full, "student_f1": s_full,
            "examples": teacher.n, "resamples": resamples, "confidence": CONFIDENCE}


def quality(ctx: Context) -> dict[str, Any]:
    evaluations = {name: read_record(evaluation_file(ctx, name), Evaluation) for name, _ in ctx.models()}
    reports = {name: ev["report"] for name, ev in evaluations.items()}
    languages = reports["teacher"]["languages"]
    groups = _groups(ctx, languages)
    models = {name: {"per_language": {la: (r["per_language"].get(la) or {}).get("f1") for la in languages},
                     "groups": {g: _f1(r, members) for g, members in groups.items()},
                     "examples": {la: (r["per_language"].get(la) or {}).get("support") for la in languages},
                     "seconds": evaluations[name].get("seconds")}
              for name, r in reports.items()}
    retention: dict[str, dict[str, Any]] = {}
    resamples = ctx.settings.bootstrap_resamples
    for name in reports:
        if name == "teacher":
            continue
        retention[name] = {}
        for key, members in [*groups.items(), *((la, [la]) for la in languages)]:
            t = group_examples(evaluations["teacher"], members, key)
            s = group_examples(evaluations[name], members, key)
            interval = retention_interval(t, s, resamples)
            t_f1, s_f1 = models["teacher"]["groups" if key in groups else "per_language"][key], \
                models[name]["groups" if key in groups else "per_language"][key]
            if t_f1 is not None and s_f1 is not None:  # the point estimate from evaluate_model's numbers
                interval.update(teacher_f1=t_f1, student_f1=s_f1, retention=s_f1 / t_f1 if t_f1 > 0 else None)
            retention[name][key] = interval
    baselines = reports["teacher"].get("baselines") or {}
    return {"languages": languages, "groups": groups, "models": models, "retention": retention,
            "baselines": {k: (v.get("overall") or {}).get("f1") for k, v in baselines.items()},
            "split": "test", "max_length": reports["teacher"].get("max_length")}


# ---------------------------------------------------------------------------------------------- speed
def speed(ctx: Context) -> dict[str, Any]:
    bench = read_record(ctx.stage_dir("bench") / "bench.json", Bench)
    s = ctx.settings
    batch = s.bench_batch_size
    out: dict[str, Any] = {"lengths": s.bench_lengths, "batch_size": batch, "threads": s.bench_threads,
                           "repeats": s.bench_repeats, "machine": bench["settings"].get("machine"), "models": {}}
    for model in bench["models"]:
        name, ratios = model["name"], bench["ratios"][model["name"]]
        timings = model["timings"]
        row: dict[str, Any] = {"params": model["params"]["total"], "embedding_params": model["params"]["embedding"],
                               "encoder_params": model["params"]["encoder"], "disk_bytes": model["disk_bytes"],
                               "weights_bytes": model["weights_bytes"],
                               "params_ratio": ratios["params"], "disk_ratio": ratios["disk"],
                               "shape": model["shape"], "clocks": {}}
        for clock in ("wall", "cpu"):
            per = {}
            for n in s.bench_lengths:
                lat, thr = timings[f"cpu/b1/L{n}"], timings[f"cpu/b{batch}/L{n}"]
                per[str(n)] = {"latency_ms": 1000 * lat["median_s"][clock],
                               "latency_speedup": ratios["speedup"][clock][f"cpu/b1/L{n}"],
                               "throughput": thr["sequences_per_s"][clock],
                               "throughput_speedup": ratios["speedup"][clock][f"cpu/b{batch}/L{n}"]}
            row["clocks"][clock] = per
        row["throughput_speedup"] = min(v["throughput_speedup"] for v in row["clocks"]["wall"].values())
        out["models"][name] = row
    return out


# -------------------------------------------------------------------------------------------- targets
def _losses(q: dict[str, Any], group: str) -> dict[str, float | None]:
    """F1 points lost to each stage on ``group`` (positive = lost), from teacher to the int8 student."""
    f1 = {name: m["groups"].get(group) for name, m in q["models"].items()}
    if any(f1.get(k) is None for k in ("teacher", "vocab", "kd", FINAL)):
        return {}
    copy = f1.get("width", f1.get("depth"))
    return {"vocab reduction": f1["teacher"] - f1["vocab"], "smaller student after KD": f1["vocab"] - f1["kd"],
            "int8": f1["kd"] - f1[FINAL], "weight copy before KD": (f1["vocab"] - copy) if copy is not None else None}


def _row(target: str, goal: str, measured: float, met: bool, kind: str, missed_by: str) -> dict[str, Any]:
    """One row of the targets table; ``missed_by`` is kept only when the target is missed."""
    row = {"target": target, "goal": goal, "measured": measured, "met": met, "kind": kind}
    if not met:
        row["missed_by"] = missed_by
    return row


def targets(ctx: Context, q: dict[str, Any], sp: dict[str, Any], wall_seconds: float) -> list[dict[str, Any]]:
    s = ctx.settings
    rows = []
    for group, field in RETENTION_TARGETS.items():
        goal = getattr(s, field)
        if group not in q["groups"]:
            continue
        ret = q["retention"][FINAL][group]
        measured = ret["retention"]
        met = measured is not None and measured >= goal
        row = {"target": f"retention, {group} languages (int8 student F1 ÷ teacher F1)", "goal": f"≥ {goal:.0%}",
               "measured": measured, "interval": [ret["low"], ret["high"]], "met": met, "kind": "retention",
               "group": group}
        if not met and measured is not None:
            row["missed_by"] = f"{100 * (goal - measured):.1f} points of retention"
            losses = _losses(q, group)
            if losses:
                main = {k: v for k, v in losses.items() if k != "weight copy before KD" and v is not None}
                row["losses"] = losses
                row["costliest_stage"] = max(main, key=lambda stage: main[stage])
        rows.append(row)
    final = sp["models"][FINAL]
    speedup = final["throughput_speedup"]
    if s.target_speedup is not None:
        rows.append(_row(f"throughput vs the teacher's fp32 (batch {sp['batch_size']}, lengths "
                         f"{', '.join(map(str, sp['lengths']))}; the slowest length)", f"≥ {s.target_speedup:g}×",
                         speedup, speedup >= s.target_speedup, "speedup",
                         f"{s.target_speedup / speedup:.2f}× short ({speedup:.2f}× of {s.target_speedup:g}×)"))
    if s.target_params is not None:
        share = final["params_ratio"] if final["params_ratio"] is not None else sp["models"]["kd"]["params_ratio"]
        rows.append(_row("parameters vs the teacher's", f"≤ {s.target_params:.0%}", share, share <= s.target_params,
                         "params", f"{100 * (share - s.target_params):.1f} points over"))
    kd_stages = [ctx.records.get(ctx.at_round(r).key("kd")) for r in range(1, ctx.round_count + 1)]  # each round's
    if s.budget_minutes is not None and kd_stages[-1] is not None:
        minutes = sum(stage["seconds"] for stage in kd_stages if stage is not None) / 60
        rows.append(_row("KD stage within --budget-minutes (training, dev evaluations, saving"
                         + (f"; its {len(kd_stages)} prune rounds)" if len(kd_stages) > 1 else ")"),
                         f"≤ {s.budget_minutes:g} min", minutes, minutes <= s.budget_minutes, "minutes",
                         f"{minutes - s.budget_minutes:.1f} min over"))
    if s.target_wall_minutes is not None:
        minutes = wall_seconds / 60
        rows.append(_row("wall time of all stages", f"≤ {s.target_wall_minutes:g} min", minutes,
                         minutes <= s.target_wall_minutes, "minutes", f"{minutes - s.target_wall_minutes:.1f} min over"))
    return rows


# --------------------------------------------------------------------------------------------- report
def build_report(ctx: Context, outputs: dict[str, str]) -> dict[str, Any]:
    q, sp = quality(ctx), speed(ctx)
    stages = [{"index": record["index"], "stage": key, "seconds": record["seconds"],
               "settings": record.get("settings", {}), "summary": record["summary"]}
              for key, record in ctx.records.items()]  # in the order they ran (each round's depth, width, KD)
    wall = sum(st["seconds"] for st in stages)
    plan = ctx.plan
    return {
        "teacher": ctx.settings.teacher, "dataset": ctx.evaluation.name, "task": ctx.evaluation.task,
        "languages": {"kd": ctx.kd_languages, "seen": ctx.seen, "unseen": ctx.unseen},
        "architecture": plan["architecture"], "teacher_architecture": plan["teacher"], "how": plan["how"],
        "outputs": outputs, "quality": q, "speed": sp, "targets": targets(ctx, q, sp, wall),
        **({"rounds": prune_rounds(ctx)} if "rounds" in plan else {}),
        "stages": stages, "wall_seconds": round(wall, 1), "notes": list(dict.fromkeys(ctx.notes)),
        "settings": ctx.settings.model_dump(mode="json"),
    }


def prune_rounds(ctx: Context) -> list[dict[str, Any]]:
    """Each prune-and-distil round (``--prune-rounds``): its student's shape, parameters (after the vocabulary
    reduction), the share of the encoder parameters it removed, its KD steps and best KD dev F1."""
    out = []
    for planned in ctx.rounds:
        here = ctx.at_round(planned["round"])
        student, kd = here.record("width" if here.width_selects else "depth"), here.record("kd")
        out.append({"round": planned["round"], "architecture": planned["architecture"],
                    "parameters": student["parameters"], "encoder_parameters": planned["encoder_parameters"],
                    "removed": planned["removed"], "teacher_layers": student["teacher_layers"],
                    "kd_steps": kd["global_step"], "best_dev_f1": kd["best_dev_f1"], "model": str(here.model_dir("kd"))})
    return out


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def _ci(ret: dict[str, Any]) -> str:
    if ret.get("retention") is None:
        return "–"
    band = f" [{_pct(ret['low'])}, {_pct(ret['high'])}]" if ret.get("low") is not None else ""
    return f"{_pct(ret['retention'])} %{band}"


def _summary_lines(report: dict[str, Any], heading: str = "#") -> list[str]:
    """The title (a ``heading`` of that level), the targets, the quality and where the quality goes."""
    q, sp, arch, t = report["quality"], report["speed"], report["architecture"], report["teacher_architecture"]
    lines = [f"{heading} polydistill compress: {Path(report['teacher']).name} → {arch['name']}", "",
             f"Teacher `{report['teacher']}` ({t['layers']} layers × {t['hidden']}, FFN {t['intermediate']}, "
             f"{t['heads']} heads); student {arch['layers']} layers × {arch['hidden']}, FFN {arch['intermediate']}, "
             f"{arch['heads']} heads ({report['how']}); dataset {report['dataset']}, KD languages "
             f"{' '.join(report['languages']['kd'])}"
             + (f", unseen {' '.join(report['languages']['unseen'])}" if report["languages"]["unseen"] else "")
             + f". Deployable: `{report['outputs'].get('int8', '')}` (int8 ONNX); PyTorch: "
               f"`{report['outputs'].get('model', '')}`."
             + _rounds_sentence(report), ""]
    lines += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
    for row in report["targets"]:
        measured = row["measured"]
        shown = ("–" if measured is None else f"{100 * measured:.1f} %" if row["kind"] in ("retention", "params")
                 else f"{measured:.2f}×" if row["kind"] == "speedup" else f"{measured:.1f} min")
        if row.get("interval") and row["interval"][0] is not None:
            shown += f" [{_pct(row['interval'][0])}, {_pct(row['interval'][1])}]"
        lines.append(f"| {row['target']} | {row['goal']} | {shown} | "
                     f"{'**met**' if row['met'] else '**missed** by ' + row.get('missed_by', '?')} |")
    if not report["targets"]:
        lines.append("| (none given) | | | |")
    lines.append("")
    for row in report["targets"]:
        if row["met"] or not row.get("losses"):
            continue
        losses = row["losses"]
        lines.append(
            f"**{row['group']} retention missed by {row['missed_by']}.** F1 points lost on {row['group']} languages "
            f"(teacher → int8 student): vocabulary reduction {_pts(losses['vocab reduction'])}, the smaller student "
            f"after KD {_pts(losses['smaller student after KD'])} (the weight copy alone lost "
            f"{_pts(losses['weight copy before KD'])} before KD), int8 {_pts(losses['int8'])}. The costliest stage "
            f"is **{row['costliest_stage']}**.")
        lines.append("")
    lines += [f"## Quality ({q['split']} F1 × 100, max length {q['max_length']})", "",
              "Retention = student F1 ÷ teacher F1, with its 95 % paired-bootstrap interval.", "",
              "| language | group | examples | teacher | after KD | int8 | retention (int8) |", "|---|---|---|---|---|---|---|"]
    models, ret = q["models"], q["retention"]
    for group, members in q["groups"].items():
        lines.append(f"| **{group}** | | {sum(models['teacher']['examples'][la] or 0 for la in members):,} | "
                     f"{_pct(models['teacher']['groups'][group])} | {_pct(models['kd']['groups'][group])} | "
                     f"{_pct(models[FINAL]['groups'][group])} | {_ci(ret[FINAL][group])} |")
    for la in q["languages"]:
        group = "seen" if la in q["groups"].get("seen", []) else "unseen" if la in q["groups"].get("unseen", []) else ""
        lines.append(f"| {la} | {group} | {models['teacher']['examples'][la] or 0:,} | "
                     f"{_pct(models['teacher']['per_language'][la])} | {_pct(models['kd']['per_language'][la])} | "
                     f"{_pct(models[FINAL]['per_language'][la])} | {_ci(ret[FINAL][la])} |")
    lines.append("")
    lines += ["## Where the quality goes (every intermediate student on the same test split)", "",
              "| model | " + " | ".join(f"{g} F1" for g in q["groups"]) + " | Δ all vs previous | params | "
              "speed-up (throughput) |", "|---|" + "---|" * (len(q["groups"]) + 3)]
    previous = None
    for name, m in models.items():
        current = m["groups"]["all"]
        delta = "–" if previous is None or current is None else f"{100 * (current - previous):+.1f}"
        row = sp["models"].get(name, {})
        lines.append(f"| {MODEL_TITLES[name]} | " + " | ".join(_pct(m["groups"][g]) for g in q["groups"])
                     + f" | {delta} | {_millions(row.get('params'))} | {_times(row.get('throughput_speedup'))} |")
        previous = current
    lines.append("")
    return lines


def _rounds_sentence(report: dict[str, Any]) -> str:
    """With prune-and-distil rounds: how the student was reached, and that a model card's build section (its
    weight copy's "teacher", layers and width) describes the last round's copy of the previous round's student."""
    rounds = report.get("rounds") or []
    if len(rounds) < 2:
        return ""
    shapes = " → ".join([report["teacher_architecture"]["name"], *(r["architecture"]["name"] for r in rounds)])
    return (f" Reached in {len(rounds)} prune-and-distil rounds ({shapes}), each distilled from the teacher; the last "
            f"round copied round {len(rounds) - 1}'s student, so the layers and width a model card lists as copied "
            "are of that student.")


def render_markdown(report: dict[str, Any]) -> str:
    sp = report["speed"]
    final = sp["models"][FINAL]
    lines = _summary_lines(report)
    lines += _speed_lines(sp)
    if report.get("rounds"):
        lines += [f"## Prune-and-distil rounds ({len(report['rounds'])}; KD from the teacher in each)", "",
                  "| round | student | parameters | encoder parameters removed | KD steps | best KD dev F1 |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['round']} | {r['architecture']['name']} | {_millions(r['parameters'])} | {_pct(r['removed'])} % "
                  f"| {r['kd_steps']} | {_pct(r['best_dev_f1'])} |" for r in report["rounds"]]
        lines.append("")
    lines += ["## Stages", "", "| n | stage | wall s | what |", "|---|---|---|---|"]
    for st in report["stages"]:
        lines.append(f"| {st['index']} | {st['stage']} | {st['seconds']:.1f} | {_stage_words(st)} |")
    lines += [f"| | **total** | {report['wall_seconds']:.1f} | |", ""]
    if report["notes"]:
        lines += ["## Notes", "", *[f"- {note}" for note in report["notes"]], ""]
    lines += [f"Parameters: the int8 student has {final['params']:,} ({_pct(final['params_ratio'])} % of the "
              f"teacher's); on disk {final['disk_bytes'] / 1e6:.1f} MB ({_pct(final['disk_ratio'])} %). "
              "Full numbers: `report.json`; per-stage records: `stages/*/done.json`.", ""]
    return "\n".join(lines)


def _pts(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f}"


def _millions(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.2f} M"


def _times(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _speed_lines(sp: dict[str, Any]) -> list[str]:
    lengths, batch = sp["lengths"], sp["batch_size"]
    lines = [f"## Speed and size (interleaved in one process; {sp['repeats']} repeats; torch / onnxruntime threads "
             f"{sp['threads'] or 'default'}; × = vs the teacher on the same clock)", ""]
    head = "| model | layers×hidden/FFN | vocab | params M | params % | disk MB | disk % | " + " | ".join(
        f"latency b1 L{n} ms | throughput b{batch} L{n} /s" for n in lengths) + " |"
    for clock in ("wall", "cpu"):
        lines += [f"{clock} clock:", "", head, "|---" * (7 + 2 * len(lengths)) + "|"]
        for name, row in sp["models"].items():
            shape = row["shape"]
            cells = []
            for n in lengths:
                c = row["clocks"][clock][str(n)]
                cells += [f"{c['latency_ms']:.2f} ({c['latency_speedup']:.2f}×)",
                          f"{c['throughput']:.1f} ({c['throughput_speedup']:.2f}×)"]
            lines.append(f"| {MODEL_TITLES[name]} | {shape.get('layers')}×{shape.get('hidden')}/{shape.get('intermediate')} "
                         f"| {shape.get('vocab'):,} | {row['params'] / 1e6:.2f} | {_pct(row['params_ratio'])} | "
                         f"{row['disk_bytes'] / 1e6:.1f} | {_pct(row['disk_ratio'])} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _cache_words(cache: dict[str, Any] | bool | None) -> str:
    """The KD row's words on the teacher-output cache: what the run did (a record), or, for runs recorded before
    the outcome was, only that the schedule asked for it (``true``)."""
    from polydistill.distill.teacher_cache import describe

    if isinstance(cache, dict):
        words = describe(cache)
        return f"; {words}" if words else ""
    return "; teacher-output cache planned" if cache else ""


def _stage_words(stage: dict[str, Any]) -> str:
    from polydistill.distill.teacher_cache import size_words

    s = stage["summary"]
    name = STAGES[stage["index"]] if "index" in stage else stage["stage"]  # a prune round's row: its stage's words
    if s.get("skipped"):
        return f"skipped: {s['skipped']}"
    if name == "plan":
        pruned = s.get("prune_rounds")  # --prune-rounds other than 1: the count, how it was chosen, the shapes
        return f"{s['architecture']['name']} ({s['how']}); " + (
            f"{pruned['rounds']} prune-and-distil round{'s' if pruned['rounds'] > 1 else ''} ({pruned['how']})"
            + (": " + " → ".join(r["architecture"]["name"] for r in s["rounds"]) if s.get("rounds") else "") + "; "
            if pruned else "") + "KD " + (
            f"{s['schedule']['max_steps']} steps" if s["schedule"].get("max_steps") else "by epochs") + (
            f", fitted to the budget (estimate {s['schedule']['estimated_seconds']:.0f} s)"
            if s["schedule"].get("estimated_seconds") else "") + (
            f"; teacher-output cache ≈ {size_words(s['teacher_cache_bytes'])}" if s.get("teacher_cache_bytes") else "")
    if name == "vocab":
        return f"vocabulary {s['vocab_before']:,} → {s['vocab_after']:,} ({s['rule']})"
    if name == "depth":
        return f"teacher layers {s['teacher_layers']} (map {s['layer_map']})"
    if name == "width":
        return f"hidden {s['hidden']}, FFN {s['intermediate']}, {s['heads']} heads ({s['method']} selection)"
    if name == "kd":
        f1 = s.get("best_dev_f1")
        return (f"{s['global_step']} steps, best dev F1 {_pct(f1)}; terms "
                + ", ".join(f"{k} {v:g}" for k, v in s["weights"].items())
                + _cache_words(s.get("teacher_cache"))
                + (f"; augmentation {s['unlabelled']['source']} ({s['unlabelled']['examples']:,} unlabelled examples)"
                   if s.get("unlabelled") else ""))
    if name == "int8":
        return f"{s.get('quantization')}, {(s.get('onnx_bytes') or 0) / 1e6:.1f} MB"
    if name == "evaluate":
        return f"{s['examples']:,} test examples per model"
    if name == "bench":
        return ", ".join(s["models"])
    return ""


# ---------------------------------------------------------------------------------------------- plots
def plot(report: dict[str, Any], out: Path) -> list[Path]:
    q, sp = report["quality"], report["speed"]
    written = []
    plt = pyplot()
    languages = q["languages"]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(languages) + 2), 4))
    shown = [("teacher", "teacher"), ("kd", "student (after KD)"), (FINAL, "student (int8)")]
    width = 0.8 / len(shown)
    for j, (name, label) in enumerate(shown):
        xs = [i + (j - (len(shown) - 1) / 2) * width for i in range(len(languages))]
        values = [100 * (q["models"][name]["per_language"][la] or 0) for la in languages]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ticks = [la + (" (unseen)" if la in q["groups"].get("unseen", []) else "") for la in languages]
    ax.set_xticks(range(len(languages)), ticks, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("test F1 (%)")
    ax.set_title(f"{report['dataset']}: F1 per language, teacher vs student")
    ax.legend(fontsize=8)
    written.append(save_figure(plt, fig, out / "f1_per_language.png"))

    plt = pyplot()
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    markers = {"seen": "o", "unseen": "s", "all": "D"}
    shown_groups = [g for g in q["groups"] if g != "all"] or ["all"]
    handles = []
    for i, (name, m) in enumerate(q["models"].items()):
        row = sp["models"].get(name)
        if row is None:
            continue
        color, size = f"C{i % 10}", 30 + 400 * (row["params_ratio"] or 0)
        coords = (row["throughput_speedup"], 100 * (row["params_ratio"] or 0))
        labelled = False
        for group in shown_groups:
            if m["groups"].get(group) is None:
                continue
            f1 = 100 * m["groups"][group]
            for ax, x in zip(axes, coords, strict=True):
                ax.scatter(x, f1, s=size, marker=markers[group], color=color, alpha=0.7, edgecolors="black",
                           linewidths=0.5)
                if not labelled:
                    ax.annotate(SHORT_TITLES[name], (x, f1), fontsize=7, xytext=(5, 5), textcoords="offset points")
            labelled = True
        handles.append(Line2D([], [], marker="o", linestyle="", color=color, label=MODEL_TITLES[name]))
    handles += [Line2D([], [], marker=markers[g], linestyle="", color="grey", label=f"{g} languages")
                for g in shown_groups]
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel(f"throughput speed-up vs teacher (batch {sp['batch_size']}, slowest length; log)")
    axes[1].set_xlabel("parameters (% of the teacher's)")
    for ax in axes:
        ax.set_ylabel("test F1 (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle("quality – speed – size of the intermediate students (marker area ∝ parameters)")
    written.append(save_figure(plt, fig, out / "tradeoff.png"))
    return written


def write_report(ctx: Context, outputs: dict[str, str]) -> tuple[dict[str, Any], dict[str, Path]]:
    report = build_report(ctx, outputs)
    files = {"json": ctx.root / "report.json", "markdown": ctx.root / "report.md"}
    pngs = plot(report, ctx.root / "plots")
    report["plots"] = [str(p) for p in pngs]
    atomic_write_json(files["json"], report)
    atomic_write_text(files["markdown"], render_markdown(report)
                      + "\nPlots: " + ", ".join(f"`plots/{p.name}`" for p in pngs) + ".\n")
    files.update({p.stem: p for p in pngs})
    return report, files


def write_model_cards(outputs: dict[str, Path], report: dict[str, Any]) -> None:
    """The final models' cards get the report card's title, targets and quality sections appended (no machine
    paths: :func:`~polydistill.student.card.public_report`) and its test F1 in their ``model-index``."""
    summary = "\n".join(_summary_lines(public_report(report), heading="##"))
    for key, path in outputs.items():
        card = path / CARD_FILE
        if card.is_file():
            body = card.read_text(encoding="utf-8").split("\n## polydistill compress", 1)[0].rstrip()
            atomic_write_text(card, f"{body}\n\n{summary.rstrip()}\n")
            record_test_results(path, report, "kd" if key == "model" else key)  # the report's test F1


__all__ = ["build_report", "plot", "prune_rounds", "quality", "render_markdown", "retention_interval", "speed", "targets",
           "write_model_cards", "write_report"]

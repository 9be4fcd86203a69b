"""``polydistill compress`` on a tiny BERT teacher fine-tuned here: the stages composed end to end, the
report against evaluate_model / bench_models run separately, resume after a kill (between stages and
inside KD), the up-front refusals (exit 2 via the CLI), the fingerprint refusal and --overwrite, the
presets, the candidate choice of --target-speedup and the schedule of --budget-minutes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from polydistill.errors import PolydistillError
from test_distill_tasks import tiny_model, tiny_task

FAST = dict(languages="de", unseen_languages=["en"], wordfreq=False, calibration_size=32, bench_lengths=[16],
            bench_repeats=1, speedup_repeats=1, bootstrap_resamples=200, allow_untrained_teacher=True,
            allow_weak_teacher=True, training={"max_steps": 4, "eval_steps": 2, "batch_size": 16, "max_length": 32,
                                               "logging_steps": 2})
CLI_FAST = ["-l", "de", "--unseen-languages", "en", "--no-wordfreq", "--calibration-size", "32", "--bench-lengths",
            "16", "--bench-repeats", "1", "--speedup-repeats", "1", "--max-length", "32", "--batch-size", "16",
            "--allow-untrained-teacher", "--allow-weak-teacher"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny dataset folder (languages de, en) and a teacher fine-tuned on its de split."""
    from polydistill.data.load import load_task_data
    from polydistill.distill.finetune import finetune
    from polydistill.distill.settings import TrainSettings

    root = tmp_path_factory.mktemp("compress")
    task = tiny_task("sequence", n_train=96, n_dev=48)
    data_dir = root / "tinydata"
    data_dir.mkdir()
    (data_dir / "labels.txt").write_text("\n".join(task.label_names) + "\n")
    for split, rows in task.splits.items():
        lines = [json.dumps({"text": r["text"], "label": task.label_names[r["label"]], "language": r["language"]})
                 for r in rows]
        (data_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    data = load_task_data(str(data_dir), languages="de")
    model, tokenizer = tiny_model(data)
    finetune(model, data, TrainSettings(output_dir=root / "teacher", max_steps=16, eval_steps=8, learning_rate=3e-3,
                                        batch_size=16, logging_steps=8, progress=False), tokenizer=tokenizer)
    return SimpleNamespace(root=root, data=str(data_dir), teacher=str(root / "teacher"))


def _run(ws, out, **overrides):
    from polydistill.compress import compress

    return compress(teacher=ws.teacher, dataset=ws.data, out=out, **{**FAST, **overrides})


def _counting(monkeypatch, fail: dict | None = None) -> dict[str, int]:
    """Count the calls of every stage function; ``fail[name] = exc`` raises it on that stage's first call."""
    from polydistill.compress import stages

    calls = {name: 0 for name in stages.STAGES}
    for name in stages.STAGES:
        original = getattr(stages, f"run_{name}")

        def wrapped(ctx, _name=name, _original=original):
            calls[_name] += 1
            if fail and _name in fail and calls[_name] == 1:
                raise fail[_name]
            return _original(ctx)

        monkeypatch.setattr(stages, f"run_{name}", wrapped)
    return calls


def test_compress_end_to_end_resumes_after_kills_and_matches_evaluate_and_bench(workspace, tmp_path, monkeypatch):
    from transformers import Trainer

    from polydistill.bench.measure import bench_models
    from polydistill.compress import stages
    from polydistill.evaluate import evaluate_model

    out = tmp_path / "cz"
    # 1st run: killed between stages (the width stage raises)
    calls = _counting(monkeypatch, fail={"width": RuntimeError("killed")})
    with pytest.raises(RuntimeError, match="killed"):
        _run(workspace, out)
    done = sorted(p.parent.name for p in (out / "stages").glob("*/done.json"))
    assert done == ["0-plan", "1-vocab", "2-depth"] and (out / "compress.json").is_file()
    # 2nd run: killed inside KD after its first checkpoint (step 2)
    original_step, steps = Trainer.training_step, {"n": 0}

    def interrupted(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == 3:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(workspace, out)
    assert (out / "stages" / "4-kd" / "model.work" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (out / "stages" / "4-kd" / "done.json").exists()
    monkeypatch.setattr(Trainer, "training_step", original_step)
    # 3rd run: finishes; the stages done before are not redone, KD resumes from its checkpoint
    result = _run(workspace, out)
    assert calls == {"plan": 1, "vocab": 1, "depth": 1, "width": 2, "kd": 2, "int8": 1, "evaluate": 1, "bench": 1}
    assert result.resumed == ["plan", "vocab", "depth", "width"]
    kd = result.stages["kd"]["summary"]
    assert kd["resumed_from"].endswith("checkpoint-2") and kd["global_step"] == 4
    assert kd["weights"]["rel"] == 1.0  # the width changed (small preset: hidden 16 of 32)

    # outputs
    for name in stages.STAGES:
        assert (out / "stages" / f"{stages.STAGES.index(name)}-{name}" / "done.json").is_file()
    assert (result.model_dir / "config.json").is_file() and (result.model_dir / "model.safetensors").is_file()
    assert (result.int8_dir / "model.onnx").is_file()
    for name in ("report.md", "report.json", "plots/f1_per_language.png", "plots/tradeoff.png"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["architecture"]["name"] == "2L-h16-ffn32-4x4" and report["languages"]["seen"] == ["de"]
    vocab = result.stages["vocab"]["summary"]
    assert vocab["vocab_after"] < vocab["vocab_before"]
    markdown = (out / "report.md").read_text()
    assert "## Targets" in markdown and "| de | seen |" in markdown and "| en | unseen |" in markdown
    assert "polydistill compress" in (result.model_dir / "README.md").read_text()

    # quality: the report's numbers are evaluate_model's on the same test split
    quality = report["quality"]
    for name, path in (("kd", result.model_dir), ("int8", result.int8_dir), ("teacher", workspace.teacher)):
        separate = evaluate_model(str(path), None, result.test_data, split="test", max_length=32, seen=["de"])
        for lang in ("de", "en"):
            assert quality["models"][name]["per_language"][lang] == pytest.approx(separate.per_language[lang]["f1"])
        assert quality["models"][name]["groups"]["seen"] == pytest.approx(separate.groups["seen"]["f1"])
        assert quality["models"][name]["groups"]["all"] == pytest.approx(separate.overall["f1"])
    for key, interval in quality["retention"]["int8"].items():
        t_f1, s_f1 = quality["models"]["teacher"]["groups" if key in quality["groups"] else "per_language"][key], \
            quality["models"]["int8"]["groups" if key in quality["groups"] else "per_language"][key]
        assert interval["retention"] == pytest.approx(s_f1 / t_f1)
        assert interval["low"] <= interval["high"]
    seen_target = next(t for t in report["targets"] if t["kind"] == "retention" and t["group"] == "seen")
    assert seen_target["measured"] == pytest.approx(quality["retention"]["int8"]["seen"]["retention"])

    # speed and size: the report's numbers are bench_models' (sizes exactly; speed-ups are timings, so
    # only their presence and sign are unit-tested: their values belong to benchmarks, not tests)
    separate = bench_models([workspace.teacher, result.model_dir, result.int8_dir], names=["teacher", "kd", "int8"],
                            lengths=[16], batch_size=32, repeats=1, threads=1, device="cpu")
    for model in separate.models:
        mine = report["speed"]["models"][model.name]
        assert mine["params"] == model.params.total and mine["encoder_params"] == model.params.encoder
        assert mine["weights_bytes"] == model.weights_bytes
        assert mine["throughput_speedup"] > 0 and separate.ratios[model.name]["speedup"]["wall"]["cpu/b32/L16"] > 0
    assert report["speed"]["models"]["teacher"]["throughput_speedup"] == pytest.approx(1.0)
    # the same command again: nothing is redone
    again = _run(workspace, out)
    assert again.resumed == list(stages.STAGES) and calls["kd"] == 2
    assert json.loads((out / "report.json").read_text())["quality"] == quality
    # a finished stage whose weights were truncated since is noticed (its marker records their SHA-256)
    depth = json.loads((out / "stages" / "2-depth" / "done.json").read_text())
    assert set(depth["weight_files"]) == {"model/model.safetensors"}
    weights = out / "stages" / "2-depth" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(PolydistillError, match=r"up to its depth stage, but .*model\.safetensors was changed since; "
                                               "pass --overwrite"):
        _run(workspace, out)


def test_a_different_command_is_refused_naming_what_differs_unless_overwrite(workspace, tmp_path, monkeypatch,
                                                                             capsys):
    from polydistill.cli import main

    out = tmp_path / "cz"
    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out, size="tiny")
    with pytest.raises(PolydistillError, match=r"another command \(it differs in .*size.*--overwrite"):
        _run(workspace, out, size="base")
    with pytest.raises(SystemExit) as exit_:
        main(["compress", workspace.teacher, "--dataset", workspace.data, "--out", str(out), "--size", "base",
              "--max-steps", "4", *CLI_FAST])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and "differs in" in errors[0] and "size" in errors[0]
    assert "Traceback" not in err
    assert calls["plan"] == 1
    calls_before = dict(calls)

    def stop(ctx):
        raise RuntimeError("stop")

    monkeypatch.setattr("polydistill.compress.stages.run_vocab", stop)
    earlier = _snapshot(out)
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out, size="base", overwrite=True)
    assert calls["plan"] == calls_before["plan"] + 1  # started afresh, beside the earlier run
    assert _snapshot(out) == earlier  # the failed replacement gave the earlier run back, byte for byte
    assert not (tmp_path / ".cz.previous").exists()
    monkeypatch.undo()
    _run(workspace, out, size="base", overwrite=True)  # a replacement that finishes replaces it
    record = json.loads((out / "compress.json").read_text())
    assert record["fingerprint"]["settings"]["size"] == "base"
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    assert plan["architecture"]["name"] == "2L-h32-ffn64-4x8"  # base = half depth, full width
    assert not (tmp_path / ".cz.previous").exists()

    # a replacement killed mid-run (SIGKILL: no handler ran) leaves the earlier run set aside; the next
    # command puts it back before anything else
    finished = _snapshot(out)
    (tmp_path / ".cz.previous").mkdir()
    out.rename(tmp_path / ".cz.previous")
    (out / "stages").mkdir(parents=True)
    (out / "stages" / "half-written").write_text("partial")
    with pytest.raises(PolydistillError, match="differs in"):
        _run(workspace, out, size="tiny")
    assert _snapshot(out) == finished and not (tmp_path / ".cz.previous").exists()


def _snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("args, message", [
    (["--target-speedup", "1000", "--speedup-on", "fp32"], "No candidate student reaches --target-speedup 1000"),
    (["--layers", "9"], "more than the teacher's 4 layers"),
    (["--hidden", "30"], "not divisible by the teacher's 4 attention heads"),
    (["--size", "tiny", "--target-speedup", "4"], "either --size or --target-speedup"),
    (["--budget-minutes", "5", "--max-steps", "3"], "either --budget-minutes"),
    (["--budget-minutes", "0.0001"], "leaves no time for KD"),
    (["-l", "en", "--unseen-languages", "de"], "the teacher was not fine-tuned on it"),
    (["--size", "base", "--prune-rounds", "3"], "--prune-rounds 3 cannot give 3 distinct student shapes from the "
                                                "teacher's 4L-h32-ffn64-4x8 to the student's 2L-h32-ffn64-4x8"),
    (["--prune-rounds", "0"], "greater than or equal to 1 (--prune-rounds)"),
    (["--prune-rounds", "two"], "a whole number (1 = one shot) or auto, got 'two' (--prune-rounds)"),
    (["--prune-rounds", "2", "--max-steps", "1"], "--max-steps 1 cannot be split over 2 prune rounds"),
    (["--prune-rounds", "auto", "--layer-map", "0,3"], "--layer-map 0,3 lists the teacher layers of one copy"),
    (["--heads", "auto"], "--heads auto picks the head count by measured speed, which --target-speedup measures"),
    (["--heads", "2", "--prune-rounds", "2"], "--prune-rounds narrows every head round by round"),
    (["--heads", "2", "--kd-term", "att=1"], "--kd-term att compares attention maps head by head"),
    (["--heads", "3"], "--hidden 16 is not divisible by --heads 3"),
    (["--heads", "1"], "1 heads of a 16-wide student would be 16 wide, wider than the teacher's 8"),
    (["--heads", "5"], "--heads 5 is more than the teacher's 4 attention heads"),
])
def test_impossible_targets_are_refused_up_front_with_one_sentence(workspace, tmp_path, capsys, args, message):
    from polydistill.cli import main

    out = tmp_path / "cz"
    with pytest.raises(SystemExit) as exit_:
        main(["compress", workspace.teacher, "--dataset", workspace.data, "--out", str(out), *CLI_FAST, *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err  # one sentence
    if "target-speedup 1000" in message:
        assert "the fastest of the" in err and "reaches" in err  # says the best measured
    assert not (out / "compress.json").exists()  # nothing of the refused command is kept


def test_target_speedup_picks_the_largest_measured_candidate_and_budget_fits_steps(workspace, tmp_path, monkeypatch):
    from polydistill.compress.plan import Architecture

    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError):
        _run(workspace, out, target_speedup=1.05, speedup_on="fp32", budget_minutes=2.0,
             training={"batch_size": 16, "max_length": 32})
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    reaching = [c for c in plan["candidates"] if c["speedup"] >= 1.05]
    assert reaching, plan["candidates"]
    best = max(reaching, key=lambda c: (c["encoder_parameters"], c["architecture"]["layers"]))
    assert plan["architecture"] == best["architecture"] and plan["measured_speedup"] == best["speedup"]
    names = [c["architecture"]["name"] for c in plan["candidates"]]
    assert "4L-h32-ffn64-4x8" not in names and len(names) == len(set(names))  # never the teacher itself
    assert Architecture.from_dict(plan["architecture"]).layers <= 4
    schedule = plan["schedule"]
    assert schedule["max_steps"] >= 1 and schedule["estimated_seconds"] <= 2.0 * 60
    assert schedule["basis"]["student_step_s"] > 0 and schedule["basis"]["teacher_forward_s"] > 0
    assert calls["plan"] == 1


def test_speedup_on_best_measures_each_candidate_in_its_fastest_runtime(workspace, tmp_path, monkeypatch):
    """``--speedup-on best``: every candidate timed in each runtime ``--runtime auto`` would try on this machine
    (the machine's profile decides which), its speed-up per length from its fastest one."""
    from polydistill.compress.measure import best_runtimes

    _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError):
        _run(workspace, out, target_speedup=1.05, speedup_on="best")
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    runtimes = best_runtimes()
    assert "onnx-int8" in runtimes and ("torch-bf16" in runtimes) == _native_bf16()
    for candidate in plan["candidates"]:
        assert set(candidate["runtime_by_length"].values()) <= set(runtimes)
        assert candidate["speedup"] == min(candidate["speedup_by_length"].values())


def _native_bf16() -> bool:
    from polydistill.export.machine import machine_profile

    return machine_profile().native_bf16


def test_target_params_bounds_the_candidates_with_the_planned_vocabulary(workspace, tmp_path, monkeypatch):
    from polydistill.compress.measure import parameters_with_vocab
    from polydistill.compress.plan import choose_candidate

    def row(name, speedup, encoder, hidden, params):
        return {"architecture": {"name": name, "layers": 2, "hidden": hidden}, "speedup": speedup,
                "encoder_parameters": encoder, "parameters": params, "vocab_size": 100}

    big, small = row("big", 20.0, 900, 64, 10_000), row("small", 30.0, 300, 32, 5_000)
    for r in (big, small):
        r["parameters_after_vocab"] = parameters_with_vocab(r, 1_100)  # 1,000 more rows of `hidden`
    assert (big["parameters_after_vocab"], small["parameters_after_vocab"]) == (74_000, 37_000)
    assert choose_candidate([big, small], 15.0)["architecture"]["name"] == "big"  # speed only: the largest
    assert choose_candidate([big, small], 15.0, 50_000)["architecture"]["name"] == "small"  # the largest that fits
    assert choose_candidate([big, small], 15.0, 1_000)["architecture"]["name"] == "big"  # none fits: speed decides

    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError):
        _run(workspace, out, target_speedup=1.05, speedup_on="fp32", target_params=0.5,
             training={"batch_size": 16, "max_length": 32, "max_steps": 2})
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    limit = 0.5 * plan["teacher_parameters"]
    assert plan["planned_vocab"] >= 1 and plan["teacher_parameters"] > 0
    fitting = [c for c in plan["candidates"] if c["speedup"] >= 1.05 and c["parameters_after_vocab"] <= limit]
    if fitting:  # the plan picks the largest candidate that reaches the speed-up and fits
        best = max(fitting, key=lambda c: (c["encoder_parameters"], c["architecture"]["layers"]))
        assert plan["architecture"] == best["architecture"] and "fit 50%" in plan["how"]
    else:
        assert any("--target-params" in note for note in plan["notes"])
    assert calls["plan"] == 1


def test_presets_scale_from_the_teacher_and_impossible_sizes_are_refused():
    from polydistill.compress.plan import (
        Architecture,
        CompressSettings,
        candidate_architectures,
        preset,
        requested_architecture,
    )

    e5 = Architecture(12, 384, 1536, 12)
    assert preset("base", e5) == Architecture(6, 384, 1536, 12)
    assert preset("small", e5) == Architecture(6, 192, 768, 12)
    assert preset("tiny", e5) == Architecture(4, 192, 768, 12)
    large = Architecture(24, 1024, 4096, 16)
    assert preset("tiny", large) == Architecture(8, 512, 2048, 16)

    def settings(**kw):
        return CompressSettings(teacher="t", dataset="d", out="o", **kw)

    assert requested_architecture(settings(), e5) == preset("small", e5)  # the default
    assert requested_architecture(settings(size="tiny", layers=3), e5) == Architecture(3, 192, 768, 12)
    assert requested_architecture(settings(hidden=192), e5) == Architecture(12, 192, 768, 12)
    with pytest.raises(PolydistillError, match="more than the teacher's 12 layers"):
        requested_architecture(settings(layers=13), e5)
    with pytest.raises(PolydistillError, match="not divisible by the teacher's 12 attention heads"):
        requested_architecture(settings(hidden=200), e5)
    with pytest.raises(PolydistillError, match="larger than the teacher's FFN"):
        requested_architecture(settings(intermediate=2000), e5)
    candidates = candidate_architectures(settings(target_speedup=10), e5)
    assert e5 not in candidates and Architecture(6, 384, 1536, 12) == candidates[0]
    assert {c.layers for c in candidates} == {6, 4, 3, 2, 1} and {c.hidden for c in candidates} == {384, 192, 96}
    assert {c.layers for c in candidate_architectures(settings(target_speedup=10, layers=4), e5)} == {4}


def test_budget_schedule_arithmetic_and_refusal():
    from polydistill.compress.plan import (
        BUDGET_SAFETY,
        KD_EVALUATIONS,
        KD_STEP_FACTOR,
        CompressTraining,
        fit_schedule,
    )

    timing = {"student_step_s": 0.5, "teacher_forward_s": 0.5, "student_forward_s": 0.1, "batch_size": 32}
    training = CompressTraining(batch_size=32)
    schedule = fit_schedule(10, timing, n_train=3200, n_dev=320, training=training, arch_name="s")
    per_eval = 320 * 0.1 / 32
    expected = int((10 * 60 * (1 - BUDGET_SAFETY) - (KD_EVALUATIONS + 1) * per_eval) // (KD_STEP_FACTOR * 1.0))
    assert schedule.max_steps == expected and schedule.eval_steps == -(-expected // KD_EVALUATIONS)
    assert schedule.teacher_cache is (expected * 32 >= 3200)
    assert schedule.estimated_seconds <= 10 * 60
    short = fit_schedule(0.2, timing, n_train=3200, n_dev=320, training=training, arch_name="s")
    assert short.max_steps >= 1 and short.teacher_cache is False  # under one epoch: the cache cannot pay
    with pytest.raises(PolydistillError, match="leaves no time for KD"):
        fit_schedule(0.01, timing, n_train=3200, n_dev=320, training=training, arch_name="s")


def test_cli_help_lists_the_options_and_the_demo_variant(capsys, monkeypatch):
    from polydistill.cli import main

    monkeypatch.setenv("COLUMNS", "250")  # rich would otherwise wrap long option names
    texts = []
    for command in ("compress", "demo"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        texts.append(capsys.readouterr().out)
    for flag in ("--size", "--target-speedup", "--budget-minutes", "--unseen-languages", "--vocab-coverage",
                 "--push-to-hub", "--lr", "--max-steps", "--precision", "--overwrite", "--max-test-per-language",
                 "--unlabelled-data", "--unlabelled-max"):
        assert flag in texts[0], flag
    assert "--compress" in texts[1]


def test_demo_compress_needs_the_demo_grid_first(tmp_path):
    from polydistill.demo.pipeline import demo_teacher_dir

    with pytest.raises(PolydistillError):
        demo_teacher_dir(tmp_path / "no-demo")


def test_compress_module_paths_exist():
    import polydistill.compress as package

    assert Path(package.__file__).parent.name == "compress"


# ------------------------------------------------------------------------------ teacher-labelled augmentation
def test_compress_with_unlabelled_data_augments_kd_and_reports_it(workspace, tmp_path):
    from polydistill.data.load import load_task_data

    out, source = tmp_path / "cz", f"{workspace.data}:en"  # the unseen language's train inputs
    en_train = len(load_task_data(workspace.data, languages="en", purpose="evaluate").splits["train"])
    assert en_train > 20
    result = _run(workspace, out, unlabelled_data=source, unlabelled_max=20)
    kd = result.stages["kd"]
    assert kd["summary"]["unlabelled"] == {"source": source, "examples": 20, "max": 20, "languages": ["en"]}
    assert kd["settings"]["unlabelled_data"] == source and kd["settings"]["unlabelled_max"] == 20
    run = json.loads((out / "stages" / "4-kd" / "model" / "run.json").read_text())  # distill's own record
    de_train = len(load_task_data(workspace.data, languages="de").splits["train"])  # the KD languages' train split
    assert run["data"]["unlabelled"] == 20 and run["data"]["train"] == de_train + 20
    assert run["data"]["languages"] == ["de"]  # unlabelled-only languages are not "seen"
    report = json.loads((out / "report.json").read_text())
    stage = next(st for st in report["stages"] if st["stage"] == "kd")
    assert stage["summary"]["unlabelled"]["examples"] == 20 and stage["summary"]["unlabelled"]["source"] == source
    assert report["settings"]["unlabelled_data"] == source
    kd_row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| 4 | kd |"))
    assert f"augmentation {source} (20 unlabelled examples)" in kd_row
    record = json.loads((out / "compress.json").read_text())["fingerprint"]
    assert record["settings"]["unlabelled_data"] == source and record["data"]["unlabelled"]


def test_unlabelled_data_changes_the_fingerprint_and_runs_without_it_keep_theirs(workspace, tmp_path, monkeypatch):
    out = tmp_path / "cz"
    more = tmp_path / "more.txt"
    more.write_text("\n".join(["hallo welt das ist", "play some jazz in paris"] * 3), encoding="utf-8")
    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    with pytest.raises(RuntimeError, match="stop"):  # a file is taken as it is, whatever its language
        _run(workspace, out, unlabelled_data=f"xx={more}")
    record = json.loads((out / "compress.json").read_text())["fingerprint"]
    assert record["settings"]["unlabelled_data"] == f"xx={more}" and "unlabelled_max" not in record["settings"]
    for overrides, differs in ((dict(unlabelled_data=f"{workspace.data}:en"), "unlabelled_data"),
                               (dict(unlabelled_data=f"xx={more}", unlabelled_max=2), "unlabelled_max"),
                               ({}, "unlabelled_data")):
        with pytest.raises(PolydistillError, match=rf"another command \(it differs in .*{differs}.*--overwrite"):
            _run(workspace, out, **overrides)
    more.write_text("bonjour le monde\n", encoding="utf-8")  # the same option, another content
    with pytest.raises(PolydistillError, match=r"differs in data\.unlabelled"):
        _run(workspace, out, unlabelled_data=f"xx={more}")
    assert calls["plan"] == 1
    # without --unlabelled-data the fingerprint has no trace of it (older compress directories keep theirs)
    def stop(ctx):
        raise RuntimeError("stop")

    monkeypatch.setattr("polydistill.compress.stages.run_vocab", stop)
    plain = tmp_path / "plain"
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, plain)
    record = json.loads((plain / "compress.json").read_text())["fingerprint"]
    assert not any("unlabelled" in key for key in [*record["settings"], *record["data"]])


@pytest.mark.parametrize("args, message", [
    (["--unlabelled-data", "{data}:en"], "en is neither in --languages nor in --unseen-languages"),
    (["--unlabelled-data", "no-such-thing"], "neither a file nor DATASET:LANGUAGES"),
    (["--unlabelled-data", "no-such-dataset:de"], "Unknown dataset 'no-such-dataset'"),
    (["--unlabelled-max", "5"], "--unlabelled-max caps --unlabelled-data"),
])
def test_bad_unlabelled_data_is_refused_up_front(workspace, tmp_path, capsys, monkeypatch, args, message):
    from polydistill.cli import main

    calls = _counting(monkeypatch)
    out = tmp_path / "cz"
    at = CLI_FAST.index("--unseen-languages")
    seen_only = CLI_FAST[:at] + CLI_FAST[at + 2:]  # de only: en is neither a KD nor an unseen language
    with pytest.raises(SystemExit) as exit_:
        main(["compress", workspace.teacher, "--dataset", workspace.data, "--out", str(out), "--max-steps", "2",
              *seen_only, *[a.format(data=workspace.data) for a in args]])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    if "--unseen-languages" in message:
        assert "add it to --unseen-languages" in errors[0]
    assert not (out / "compress.json").exists() and not any(calls.values())


def test_runtime_auto_ships_the_fastest_gated_runtime_and_records_the_choice(workspace, tmp_path):
    """``--runtime`` is one settings field; ``auto`` times the runtimes on this machine, gates them on the
    test split and ships the winner as DIR/model-int8, which evaluate and bench then read like any other."""
    result = _run(workspace, tmp_path / "cz", size="tiny", runtime="auto")
    summary = result.stages["int8"]["summary"]
    selection = summary["selection"]
    chosen = selection["chosen"]
    assert summary["runtime"] == chosen and selection["candidates"][chosen]["gate"]["passed"]
    assert all(c["gate"]["passed"] or not c["chosen"] for c in selection["candidates"].values())
    assert summary["machine"]["label"]
    record = json.loads((result.int8_dir / "polydistill.json").read_text())
    assert record["export"]["runtime"] == chosen and record["export"]["selection"]["chosen"] == chosen
    assert set(selection["serve"]) == {"b32/L16", "b1/L16"}  # --bench-lengths at the bench batch, and batch 1
    assert "int8" in json.dumps(result.report["quality"])  # the shipped model was evaluated like the others


def test_compress_runs_on_a_token_task_end_to_end(tmp_path):
    """massive-slots (fixture locales): vocabulary, depth, width, KD with token-level terms, int8, per-language
    seqeval F1 of every stage, bench; the student is an ordinary token-classification directory."""
    from transformers import AutoModelForTokenClassification

    from polydistill.compress import compress
    from polydistill.compress.stages import STAGES
    from polydistill.data.load import load_task_data
    from polydistill.data.massive_slots import LABELS
    from polydistill.distill.finetune import finetune
    from polydistill.distill.settings import TrainSettings

    fixtures = Path(__file__).parent / "fixtures" / "data"
    data = load_task_data("massive-slots", languages="de,en,sw", data_root=fixtures)
    model, tokenizer = tiny_model(data)
    finetune(model, data, TrainSettings(output_dir=tmp_path / "teacher", max_steps=8, eval_steps=8, learning_rate=3e-3,
                                        batch_size=16, logging_steps=8, progress=False), tokenizer=tokenizer)
    result = compress(teacher=str(tmp_path / "teacher"), dataset="massive-slots", data_root=str(fixtures),
                      out=str(tmp_path / "out"), **{**FAST, "languages": "de,en,sw", "unseen_languages": ["cy"]})
    report = result.report
    assert report["task"] == "token" and report["languages"]["unseen"] == ["cy-GB"]
    assert [stage["stage"] for stage in report["stages"]] == list(STAGES)
    kd = next(stage for stage in report["stages"] if stage["stage"] == "kd")["summary"]
    assert kd["weights"]["pred"] > 0 and kd["global_step"] == 4  # token-level logits distilled
    for name in ("teacher", "kd", "int8"):
        assert set(report["quality"]["models"][name]["per_language"]) == {"cy-GB", "de-DE", "en-US", "sw-KE"}
    check = next(stage for stage in report["stages"] if stage["stage"] == "int8")["summary"]["check"]
    assert check["argmax_agreement"] >= 0.9  # int8 tags agree with the fp32 student's, position by position
    student = AutoModelForTokenClassification.from_pretrained(result.model_dir)
    assert list(student.config.id2label.values()) == list(LABELS)
    assert student.config.num_hidden_layers < 4


# ------------------------------------------------------------------------------ teacher-output cache budget
def test_a_cache_over_the_budget_is_warned_up_front_recorded_by_kd_and_reported(workspace, tmp_path, monkeypatch):
    """--teacher-cache-gb reaches KD: a cache over it is named in the plan (estimated), skipped by KD with the bytes
    needed and the budget in the KD stage's record, and the report row says it was skipped, not that it was used."""
    from polydistill.compress import report, stages

    def stop(ctx):
        raise RuntimeError("stop")

    monkeypatch.setattr(stages, "run_int8", stop)
    said: list[str] = []
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out, teacher_cache_gb=1e-9, say=said.append)
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    assert plan["teacher_cache_bytes"] > 1
    assert any(m.startswith("warning: teacher-output cache: skipped — needs ") and "(estimated)" in m for m in said)
    done = json.loads((out / "stages" / "4-kd" / "done.json").read_text())
    cache = done["summary"]["teacher_cache"]
    assert cache["skipped"].endswith("> 1e-09 GB budget (--teacher-cache-gb)") and cache["budget_bytes"] == 1
    assert cache["bytes"] > cache["budget_bytes"]
    assert "teacher_cache_gb" not in done["settings"]  # a cache budget decides nothing: not the stage's identity
    run = json.loads((out / "stages" / "4-kd" / "model" / "run.json").read_text())  # distill's own record
    assert run["teacher_cache"] == cache and run["kd"]["teacher_cache_gb"] == 1e-9
    row = report._stage_words({"stage": "kd", "summary": done["summary"]})
    assert f"; teacher-output cache: skipped — {cache['skipped']}" in row
    assert any("KD ran the teacher at every step" in note for note in done["summary"]["notes"])
    # a larger budget resumes the same run (not another command) and keeps the finished KD stage
    monkeypatch.setattr(stages, "run_int8", stop)
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out, teacher_cache_gb=8.0)
    assert json.loads((out / "stages" / "4-kd" / "done.json").read_text()) == done
    assert report._stage_words({"stage": "kd", "summary": {**done["summary"], "teacher_cache": True}}).endswith(
        "; teacher-output cache planned")  # runs recorded before the outcome was


def test_an_interrupted_drop_of_the_earlier_run_is_never_restored_over_the_finished_one(tmp_path):
    """After an --overwrite run finishes, the earlier run is renamed out of the way before it is deleted: a
    deletion cut short leaves ``.DIR.previous.discard.PID`` (swept by the next command), never a half-deleted
    ``.DIR.previous`` that the next command would restore over the finished run."""
    from polydistill.compress.output import _drop_previous, _previous, _restore_previous

    root = tmp_path / "cz"
    root.mkdir()
    (root / "report.md").write_text("finished\n", encoding="utf-8")
    previous = _previous(root)
    previous.mkdir()
    (previous / "report.md").write_text("earlier\n", encoding="utf-8")
    _drop_previous(root)
    assert not previous.exists() and not list(tmp_path.glob(".cz.previous.discard.*"))
    half = tmp_path / ".cz.previous.discard.4242"  # what a kill during the deletion leaves
    half.mkdir()
    (half / "stages").mkdir()
    _restore_previous(root)  # the next command's first step
    assert (root / "report.md").read_text(encoding="utf-8") == "finished\n" and not half.exists()


# ------------------------------------------------------------------------------ iterative prune-and-distil
def test_prune_round_shapes_shrink_geometrically_to_the_target_and_split_the_kd_steps():
    from polydistill.compress.plan import (
        MAX_ROUND_REMOVAL,
        Architecture,
        CompressTraining,
        fit_schedule,
        plan_rounds,
        prune_shapes,
        round_epochs,
        round_removals,
        split_steps,
        total_schedule,
    )

    e5, small = Architecture(12, 384, 1536, 12), Architecture(6, 192, 768, 12)
    assert prune_shapes(e5, small, 1) == [small]
    assert [a.name for a in prune_shapes(e5, small, 2)] == ["8L-h276-ffn1086-12x23", "6L-h192-ffn768-12x16"]  # 12·√½ ≈ 8.5 → 8
    for n in (2, 3, 4, 6):
        shapes = prune_shapes(e5, small, n)
        assert shapes[-1] == small and len(set(shapes)) == n
        for before, after in zip([e5, *shapes], shapes, strict=False):  # never grows, always removes something
            assert (after.layers <= before.layers and after.hidden <= before.hidden
                    and after.intermediate <= before.intermediate and after != before)
            assert after.hidden % e5.heads == 0
    shapes, how = plan_rounds("auto", e5, small)  # the fewest rounds in which none removes more than 30 %
    assert max(round_removals(e5, shapes)) <= MAX_ROUND_REMOVAL and how.startswith("auto: the fewest")
    fewer = prune_shapes(e5, small, len(shapes) - 1)
    assert max(round_removals(e5, fewer)) > MAX_ROUND_REMOVAL or len(set(fewer)) < len(fewer)
    assert plan_rounds(1, e5, small) == ([small], "--prune-rounds 1")
    base = Architecture(6, 384, 1536, 12)  # depth only: 12 → 6 layers gives at most 6 distinct rounds
    with pytest.raises(PolydistillError, match=r"--prune-rounds 7 cannot give 7 distinct student shapes from the "
                                               r"teacher's 12L-h384-ffn1536-12x32 to the student's 6L-h384-ffn1536-12x32 .*give "
                                               r"at most 6\."):
        plan_rounds(7, e5, base)

    # --max-steps is the total over the rounds (the remainder to the last ones); --epochs are shared alike
    parts = split_steps(CompressTraining(max_steps=10), 3)
    assert [p.max_steps for p in parts] == [3, 3, 4] and total_schedule(parts).max_steps == 10
    assert [p.eval_steps for p in parts] == [1, 1, 1]
    assert split_steps(CompressTraining(max_steps=10), 1)[0].max_steps == 10
    assert round_epochs(CompressTraining(epochs=3.0), 2) == 1.5 and round_epochs(CompressTraining(max_steps=4), 2) is None
    with pytest.raises(PolydistillError, match="--max-steps 2 cannot be split over 3 prune rounds"):
        split_steps(CompressTraining(max_steps=2), 3)
    # --budget-minutes: each round fits its equal share with its own student's step time
    timing = {"student_step_s": 0.5, "teacher_forward_s": 0.5, "student_forward_s": 0.1, "batch_size": 32}
    whole = fit_schedule(10, timing, n_train=3200, n_dev=320, training=CompressTraining(), arch_name="s")
    half = fit_schedule(10, timing, n_train=3200, n_dev=320, training=CompressTraining(), arch_name="s", rounds=2)
    assert half.max_steps == fit_schedule(5, timing, n_train=3200, n_dev=320, training=CompressTraining(),
                                          arch_name="s").max_steps < whole.max_steps
    with pytest.raises(PolydistillError, match="--budget-minutes 0.05 over 4 prune rounds leaves no time for KD"):
        fit_schedule(0.05, timing, n_train=3200, n_dev=320, training=CompressTraining(), arch_name="s", rounds=4)


def test_prune_rounds_one_is_the_one_shot_plan_and_fingerprint(workspace, tmp_path, monkeypatch):
    """``--prune-rounds 1`` (the default) is today's run, bit for bit: the same fingerprint (an earlier directory
    resumes), the same plan record; a count above 1 is another command."""
    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out)
    before = json.loads((out / "compress.json").read_text())["fingerprint"]
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())
    assert "prune_rounds" not in before["settings"] and "prune_rounds" not in plan["settings"]
    assert "rounds" not in plan["summary"] and "prune_rounds" not in plan["summary"]
    monkeypatch.setattr("polydistill.compress.stages.run_vocab", lambda ctx: (_ for _ in ()).throw(RuntimeError("v")))
    with pytest.raises(RuntimeError, match="v"):
        _run(workspace, out, prune_rounds=1)  # the same command: resumes after the plan
    assert calls["plan"] == 1
    assert json.loads((out / "compress.json").read_text())["fingerprint"] == before
    assert json.loads((out / "stages" / "0-plan" / "done.json").read_text()) == plan
    with pytest.raises(PolydistillError, match=r"another command \(it differs in .*prune_rounds"):
        _run(workspace, out, prune_rounds=2)


def test_prune_rounds_share_the_budget_and_auto_bounds_each_round(workspace, tmp_path, monkeypatch):
    """--budget-minutes over rounds: each round's steps fitted to its share with its own student's measured step;
    auto: the plan records the rounds it chose and how."""
    from polydistill.compress.plan import MAX_ROUND_REMOVAL

    calls = _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, out, prune_rounds=2, budget_minutes=2.0, training={"batch_size": 16, "max_length": 32})
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())
    assert plan["settings"]["prune_rounds"] == 2 and plan["summary"]["prune_rounds"]["rounds"] == 2
    rounds = plan["summary"]["rounds"]
    assert [r["architecture"]["name"] for r in rounds] == ["3L-h24-ffn45-4x6", "2L-h16-ffn32-4x4"]
    for r in rounds:
        assert r["schedule"]["estimated_seconds"] <= 60 and r["schedule"]["basis"]["student_step_s"] > 0
    assert plan["summary"]["schedule"]["max_steps"] == sum(r["schedule"]["max_steps"] for r in rounds)
    assert rounds[0]["encoder_parameters"] > rounds[1]["encoder_parameters"] and 0 < rounds[0]["removed"] < 1

    def stop(ctx):
        raise RuntimeError("stop")

    monkeypatch.setattr("polydistill.compress.stages.run_vocab", stop)
    with pytest.raises(RuntimeError, match="stop"):
        _run(workspace, tmp_path / "auto", prune_rounds="auto", size="base")  # 4 → 2 layers at full width
    plan = json.loads((tmp_path / "auto" / "stages" / "0-plan" / "done.json").read_text())["summary"]
    assert [r["architecture"]["name"] for r in plan["rounds"]] == ["3L-h32-ffn64-4x8", "2L-h32-ffn64-4x8"]
    assert plan["prune_rounds"]["how"].startswith("auto: no count")  # 3 → 2 layers removes a third: the best there is
    assert max(r["removed"] for r in plan["rounds"]) > MAX_ROUND_REMOVAL
    assert [r["schedule"]["max_steps"] for r in plan["rounds"]] == [2, 2]  # FAST's 4 steps, halved
    assert calls["plan"] == 2


def test_prune_rounds_distil_round_by_round_to_the_same_student_and_resume(workspace, tmp_path, monkeypatch):
    from polydistill.compress import stages
    from polydistill.compress.plan import Architecture

    out = tmp_path / "cz"
    calls = _counting(monkeypatch)
    counted_depth, killed = stages.run_depth, []

    def killed_in_round_two(ctx):  # the first run is killed when round 2 starts
        if ctx.prune_round == 2 and not killed:
            killed.append(ctx.prune_round)
            raise RuntimeError("killed")
        return counted_depth(ctx)

    monkeypatch.setattr(stages, "run_depth", killed_in_round_two)
    with pytest.raises(RuntimeError, match="killed"):
        _run(workspace, out, prune_rounds=2)
    done = sorted(p.parent.name for p in (out / "stages").glob("*/done.json"))
    assert done == ["0-plan", "1-vocab", "2-depth-round-1", "3-width-round-1", "4-kd-round-1"]
    result = _run(workspace, out, prune_rounds=2)
    assert calls["kd"] == 2 and calls["plan"] == 1  # round 1 was not trained again
    assert result.resumed == ["plan", "vocab", "depth-round-1", "width-round-1", "kd-round-1"]

    plan = result.stages["plan"]["summary"]
    shapes = [Architecture.from_dict(r["architecture"]) for r in plan["rounds"]]
    assert [a.name for a in shapes] == ["3L-h24-ffn45-4x6", "2L-h16-ffn32-4x4"]  # ends at the one-shot student (small)
    assert plan["architecture"]["name"] == "2L-h16-ffn32-4x4" == result.report["architecture"]["name"]
    assert [r["schedule"]["max_steps"] for r in plan["rounds"]] == [2, 2] and plan["schedule"]["max_steps"] == 4
    kd1, kd2 = result.stages["kd-round-1"]["summary"], result.stages["kd"]["summary"]
    assert kd1["global_step"] == kd2["global_step"] == 2
    assert result.stages["depth"]["round"] == 2 and result.stages["depth"]["settings"]["prune_round"] == 2
    # round 2 copies round 1's KD student; KD matches each layer with the teacher layer it descends from
    depth2 = result.stages["depth"]["summary"]
    round1_layers = result.stages["depth-round-1"]["summary"]["teacher_layers"]
    assert depth2["teacher_layers"] == [round1_layers[k] for k in depth2["source_layers"]]
    run = json.loads((out / "stages" / "4-kd" / "model" / "run.json").read_text())
    assert run["layer_map"] == result.stages["width"]["summary"]["teacher_layers"]
    student = json.loads((out / "stages" / "2-depth" / "model" / "polydistill.json").read_text())
    assert student["teacher"] == str(out / "stages" / "4-kd-round-1" / "model")
    assert result.stages["width"]["summary"]["hidden"] == 16  # width selected on round 1's 24-wide student

    # the report lists each round: shape, parameters, KD dev F1; the final round's student is the one shipped
    rounds = result.report["rounds"]
    assert [r["architecture"]["name"] for r in rounds] == ["3L-h24-ffn45-4x6", "2L-h16-ffn32-4x4"]
    assert rounds[0]["parameters"] > rounds[1]["parameters"] == result.report["speed"]["models"]["kd"]["params"]
    assert [r["best_dev_f1"] for r in rounds] == [kd1["best_dev_f1"], kd2["best_dev_f1"]]
    markdown = (out / "report.md").read_text()
    assert "## Prune-and-distil rounds (2; KD from the teacher in each)" in markdown
    assert "| 1 | 3L-h24-ffn45-4x6 |" in markdown and "| 4 | kd-round-1 |" in markdown
    card = (result.model_dir / "README.md").read_text()  # the card's build section is round 2's copy: it says so
    assert ("Reached in 2 prune-and-distil rounds (4L-h32-ffn64-4x8 → 3L-h24-ffn45-4x6 → 2L-h16-ffn32-4x4), each "
            "distilled from the teacher; the last round copied round 1's student") in card
    assert [st["stage"] for st in result.report["stages"]][2:8] == [
        "depth-round-1", "width-round-1", "kd-round-1", "depth", "width", "kd"]
    # the same command again: nothing is trained
    again = _run(workspace, out, prune_rounds=2)
    assert calls["kd"] == 2 and set(again.resumed) == set(result.stages)


def test_heads_are_searched_and_fewer_heads_keep_whole_teacher_heads():
    """--heads (issue #36): the teacher's count narrowed by default; N keeps N whole heads where the width allows;
    auto measures both layouts of a width and, at equal size, keeps the faster."""
    from polydistill.compress.plan import (
        Architecture,
        CompressSettings,
        candidate_architectures,
        choose_candidate,
        requested_architecture,
    )
    from polydistill.compress.stages import check_kd_weights

    e5 = Architecture(12, 384, 1536, 12)

    def settings(**kw):
        return CompressSettings(teacher="t", dataset="d", out="o", **kw)

    assert Architecture(6, 192, 768, 12).name == "6L-h192-ffn768-12x16"
    assert Architecture(6, 192, 768, 6).name == "6L-h192-ffn768-6x32"
    assert requested_architecture(settings(heads=6), e5) == Architecture(6, 192, 768, 6)  # small, whole heads
    assert {c.heads for c in candidate_architectures(settings(target_speedup=10), e5)} == {12}  # the default
    auto = candidate_architectures(settings(target_speedup=10, heads="auto"), e5)
    layouts = {(c.layers, c.hidden): sorted(x.heads for x in auto if (x.layers, x.hidden) == (c.layers, c.hidden))
               for c in auto}
    assert layouts[(6, 384)] == [12] and layouts[(6, 192)] == [6, 12] and layouts[(2, 96)] == [3, 12]
    six = candidate_architectures(settings(target_speedup=10, heads=6), e5)
    assert {c.heads for c in six} == {6} and {c.hidden for c in six} == {192, 96}  # 384 ÷ 6 = 64 > 32: not one
    with pytest.raises(PolydistillError, match="wider than the teacher's 32; keep at least 12 heads"):
        requested_architecture(settings(heads=6, hidden=384), e5)

    def row(arch: Architecture, speedup: float) -> dict:
        return {"architecture": arch.to_dict(), "speedup": speedup, "encoder_parameters": arch.encoder_parameters(),
                "parameters_after_vocab": 1}

    narrow, whole = Architecture(6, 192, 768, 12), Architecture(6, 192, 768, 6)
    assert narrow.encoder_parameters() == whole.encoder_parameters()  # the same weights, split differently
    rows = [row(Architecture(6, 384, 1536, 12), 8.0), row(narrow, 15.5), row(whole, 19.0),
            row(Architecture(4, 192, 768, 12), 22.0)]
    assert choose_candidate(rows, 15)["architecture"] == whole.to_dict()  # equal size: the faster layout
    assert choose_candidate(rows, 17)["architecture"] == whole.to_dict()  # only one layout of 6×192 reaches it
    assert choose_candidate(rows, 20)["architecture"] == Architecture(4, 192, 768, 12).to_dict()

    kd = check_kd_weights({}, width_changes=True, heads_change=True)
    assert kd.weight("att") == 0 and kd.weight("rel") == 1  # maps compared head by head: off; relations span heads
    assert check_kd_weights({}, width_changes=True).weight("att") == 1


def test_fewer_heads_build_a_student_of_whole_heads_end_to_end(workspace, tmp_path):
    from transformers import AutoModelForSequenceClassification

    result = _run(workspace, tmp_path / "cz", heads=2)  # small: 2L × 16, the tiny teacher's heads are 8 wide
    assert result.report["architecture"]["name"] == "2L-h16-ffn32-2x8"
    width = result.stages["width"]["summary"]
    assert width["heads"] == 2 and width["hidden"] == 16
    assert result.stages["kd"]["summary"]["weights"].get("att", 0) == 0
    model = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    assert model.config.num_attention_heads == 2 and model.config.hidden_size == 16
    assert (result.int8_dir / "model.onnx").is_file()
    settings = json.loads((tmp_path / "cz" / "compress.json").read_text())["fingerprint"]["settings"]
    assert settings["heads"] == 2


def test_heads_auto_measures_both_layouts_of_a_width(workspace, tmp_path, monkeypatch):
    from polydistill.compress.plan import Architecture

    _counting(monkeypatch, fail={"vocab": RuntimeError("stop")})
    out = tmp_path / "cz"
    with pytest.raises(RuntimeError):
        _run(workspace, out, target_speedup=1.01, speedup_on="fp32", layers=2, heads="auto")
    plan = json.loads((out / "stages" / "0-plan" / "done.json").read_text())["summary"]
    measured = {c["architecture"]["name"]: c for c in plan["candidates"]}
    assert {"2L-h16-ffn32-4x4", "2L-h16-ffn32-2x8", "2L-h8-ffn16-4x2", "2L-h8-ffn16-1x8"} <= set(measured)
    chosen = Architecture.from_dict(plan["architecture"])
    same_size = [c for c in plan["candidates"] if c["encoder_parameters"] == chosen.encoder_parameters()
                 and c["speedup"] >= 1.01]
    assert plan["measured_speedup"] == max(c["speedup"] for c in same_size)  # of equal size, the faster layout

"""polydistill bench: parameter split, interleaved timing with a fake clock, ratios, CLI and JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from factories import make_model, make_model_dir
from polydistill.bench.measure import (
    Case,
    CaseTiming,
    ModelResult,
    ParamCounts,
    bench_models,
    compute_ratios,
    count_parameters,
    disk_size,
    interleaved_schedule,
    make_cases,
    summarise,
    time_interleaved,
    unique_names,
)
from polydistill.errors import PolydistillError


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("arch", ["bert", "xlm-roberta", "deberta-v2", "electra"])
def test_parameter_split_matches_manual_count(arch):
    model, _ = make_model(arch, "sequence")
    counts = count_parameters(model)
    backbone = model.base_model
    assert counts.total == _numel(model)
    assert counts.embedding == _numel(backbone.embeddings)
    assert counts.encoder == _numel(backbone.encoder)
    assert counts.word_embedding == model.get_input_embeddings().weight.numel()
    # the rest is exactly the pooler (if any) and the classifier head
    head = _numel(model.classifier) + (_numel(backbone.pooler) if getattr(backbone, "pooler", None) else 0)
    head += _numel(model.pooler) if arch == "deberta-v2" else 0  # DeBERTa's ContextPooler sits on the task model
    assert counts.other == head
    assert counts.embedding + counts.encoder + counts.other == counts.total
    # 4 layers of hidden 32 / FFN 64: each layer has 4 attention projections + 2 FFN matrices + 2 LayerNorms
    if arch != "deberta-v2":  # DeBERTa adds its relative-position table to the encoder
        per_layer = 4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 2 * (2 * 32)
        assert counts.encoder == 4 * per_layer


def test_tied_weights_counted_once():
    from transformers import AutoModelForMaskedLM

    model, _ = make_model("bert", "base")
    mlm = AutoModelForMaskedLM.from_config(model.config)
    assert mlm.get_output_embeddings().weight is mlm.get_input_embeddings().weight
    counts = count_parameters(mlm)
    naive = sum(p.numel() for _, p in mlm.named_parameters(remove_duplicate=False))
    assert counts.total == _numel(mlm) < naive


def test_fewer_layers_shrink_only_the_encoder():
    from transformers import AutoModel

    model, _ = make_model("bert", "base")
    config = model.config.to_dict() | {"num_hidden_layers": 2}
    big = count_parameters(model)
    small = count_parameters(AutoModel.from_config(type(model.config).from_dict(config)))
    assert small.embedding == big.embedding
    assert small.encoder * 2 == big.encoder


def test_disk_size_counts_weights_and_all_files(tmp_path):
    path = make_model_dir(tmp_path, "bert", "sequence")
    total, weights = disk_size(path)
    assert weights == (path / "model.safetensors").stat().st_size
    assert total == sum(f.stat().st_size for f in path.iterdir() if f.is_file()) > weights


# ------------------------------------------------------------------------------------------ timing


class FakeClock:
    """A clock that advances only when a fake model 'runs', by a scripted duration."""

    def __init__(self):
        self.now = 0.0
        self.calls: list[tuple[str, str]] = []

    def __call__(self) -> float:
        return self.now


def _fake_runners(clock: FakeClock, durations: dict[str, list[float]]):
    """runners[name](case)() appends to clock.calls and advances the clock by the next scripted duration."""
    scripts = {name: iter(values) for name, values in durations.items()}

    def runner(name):
        def prepare(case):
            def run():
                clock.calls.append((name, case.key))
                clock.now += next(scripts[name])

            return run

        return prepare

    return {name: runner(name) for name in durations}


def test_schedule_interleaves_and_rotates_models():
    cases = make_cases([8, 16], ["cpu"], batch_size=4)
    assert [c.key for c in cases] == ["cpu/b1/L8", "cpu/b4/L8", "cpu/b1/L16", "cpu/b4/L16"]
    order = interleaved_schedule(["a", "b", "c"], cases, repeats=3)
    assert len(order) == 3 * 4 * 3
    assert Counter((case, name) for _, case, name in order) == {(c, n): 3 for c in cases for n in "abc"}
    # within one repeat and case every model runs once, the first model rotating per repeat
    firsts = [order[r * 12][2] for r in range(3)]
    assert firsts == ["a", "b", "c"]
    assert [name for _, _, name in order[:3]] == ["a", "b", "c"]
    assert [name for _, _, name in order[12:15]] == ["b", "c", "a"]
    # repeats never mix: all of repeat 0 comes before repeat 1
    assert [r for r, _, _ in order] == sorted(r for r, _, _ in order)


def test_fake_timer_medians_warmup_excluded():
    clock = FakeClock()
    case = Case("cpu", 8, 1)
    # one warm-up (a huge 100 s: must not count), then five timed runs
    runners = _fake_runners(clock, {"a": [100, 5, 1, 3, 2, 4], "b": [100, 1, 1, 9, 1, 2]})
    samples = time_interleaved(runners, [case], repeats=5, warmup=1, clocks={"wall": clock})
    assert samples["a"][case] == {"wall": [5, 1, 3, 2, 4]}
    assert samples["b"][case] == {"wall": [1, 1, 9, 1, 2]}
    timings = summarise(samples["a"])
    assert timings[case.key].median_s() == 3
    assert summarise(samples["b"])[case.key].median_s("wall") == 1
    # warm-up ran first for both models, then the rotated interleaving
    assert [n for n, _ in clock.calls] == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]


def test_interleaving_cancels_drift_between_identical_models():
    """A machine slowing down steadily: back-to-back timing would call the first model faster."""
    case = Case("cpu", 8, 1)
    clock = FakeClock()
    n_calls = [0]

    def drifting(name):
        def prepare(case):
            def run():
                n_calls[0] += 1
                clock.now += 1.0 + 0.1 * n_calls[0]  # same work, slower every call

            return run

        return prepare

    samples = time_interleaved({"a": drifting("a"), "b": drifting("b")}, [case], repeats=9, warmup=0,
                               clocks={"wall": clock})
    ratio = summarise(samples["a"])[case.key].median_s() / summarise(samples["b"])[case.key].median_s()
    # sequential (a×9 then b×9) would give medians 1.5 vs 2.4, ratio 0.63
    assert 0.95 < ratio < 1.05


def test_time_interleaved_rejects_bad_counts():
    with pytest.raises(PolydistillError, match="repeats"):
        time_interleaved({}, [], repeats=0)
    with pytest.raises(PolydistillError, match="warmup"):
        time_interleaved({}, [], repeats=1, warmup=-1)


def test_every_clock_is_read_around_each_call():
    """Wall and CPU clocks both bracket the same call; a clock that does not move gives zero samples."""
    case = Case("cpu", 8, 1)
    wall, frozen = FakeClock(), FakeClock()
    runners = _fake_runners(wall, {"a": [2, 4, 6]})
    samples = time_interleaved(runners, [case], repeats=3, warmup=0, clocks={"wall": wall, "cpu": frozen})
    assert samples["a"][case] == {"wall": [2, 4, 6], "cpu": [0, 0, 0]}
    timing = summarise(samples["a"])[case.key]
    assert timing.to_dict()["median_s"] == {"wall": 4, "cpu": 0}
    assert timing.sequences_per_s("wall") == pytest.approx(0.25)


def _result(name, total, encoder, disk, medians, cpu_medians=None):
    timings = {c.key: CaseTiming(c, {"wall": [m], "cpu": [(cpu_medians or medians)[c]]}) for c, m in medians.items()}
    params = ParamCounts(total=total, embedding=total - encoder, word_embedding=total - encoder, encoder=encoder, other=0)
    return ModelResult(name, name, params, disk, disk, {}, timings)


def test_ratios_against_first_model():
    lat, thr = Case("cpu", 32, 1), Case("cpu", 32, 32)
    teacher = _result("teacher", 1000, 600, 4000, {lat: 0.010, thr: 0.400})
    student = _result("student", 700, 300, 2800, {lat: 0.005, thr: 0.200}, {lat: 0.004, thr: 0.100})
    tiny = _result("tiny", 250, 100, 1000, {lat: 0.004, thr: 0.100})
    ratios = compute_ratios([teacher, student, tiny])
    assert ratios["teacher"]["params"] == 1.0 and ratios["teacher"]["speedup"]["wall"][thr.key] == 1.0
    assert ratios["student"]["params"] == pytest.approx(0.7)
    assert ratios["student"]["encoder_params"] == pytest.approx(0.5)
    assert ratios["student"]["speedup"]["wall"] == {lat.key: pytest.approx(2.0), thr.key: pytest.approx(2.0)}
    # each clock against the baseline on the same clock
    assert ratios["student"]["speedup"]["cpu"] == {lat.key: pytest.approx(2.5), thr.key: pytest.approx(4.0)}
    assert ratios["tiny"]["speedup"]["wall"][lat.key] == pytest.approx(2.5)
    assert ratios["tiny"]["speedup"]["wall"][thr.key] == pytest.approx(4.0)
    assert ratios["tiny"]["disk"] == pytest.approx(0.25)
    # throughput is batch ÷ median time
    assert student.timings[thr.key].sequences_per_s() == pytest.approx(160.0)
    assert student.timings[thr.key].to_dict()["tokens_per_s"]["wall"] == pytest.approx(160.0 * 32)


def test_unique_names():
    assert unique_names(["/x/student", "/y/student", "/z/teacher"]) == ["student", "student-2", "teacher"]


# ------------------------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-models")
    return (
        make_model_dir(root, "bert", "sequence", name="teacher"),
        make_model_dir(root, "bert", "sequence", name="student", num_hidden_layers=2),
    )


def test_bench_models_end_to_end_with_fake_timer(model_dirs):
    teacher, student = model_dirs
    clock = FakeClock()

    def timer():  # every timer call advances 1 s; a run is [start, end] so each sample is exactly 1 s
        clock.now += 1.0
        return clock.now

    steps = []
    report = bench_models([teacher, student], lengths=[8, 16], batch_size=4, repeats=3, warmup=1, threads=1,
                          device="cpu", clocks={"wall": timer}, on_step=lambda *a: steps.append(a))
    data = report.to_dict()
    assert [m["name"] for m in data["models"]] == ["teacher", "student"]
    assert data["cases"] == ["cpu/b1/L8", "cpu/b4/L8", "cpu/b1/L16", "cpu/b4/L16"]
    assert len(steps) == 2 * 4 * (3 + 1)
    for model in report.models:
        assert set(model.timings) == set(data["cases"])
        assert all(t.samples_s == {"wall": [1.0, 1.0, 1.0]} for t in model.timings.values())
    assert data["ratios"]["student"]["speedup"]["wall"]["cpu/b4/L16"] == 1.0
    assert data["ratios"]["student"]["encoder_params"] == pytest.approx(0.5)
    assert report.models[1].shape["layers"] == 2
    assert data["settings"]["machine"]["torch_threads"] == 1
    json.dumps(data)  # serialisable


def test_bench_models_bad_input(tmp_path, model_dirs):
    with pytest.raises(PolydistillError, match="does not exist"):
        bench_models([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolydistillError, match="config.json"):
        bench_models([tmp_path / "empty"])
    with pytest.raises(PolydistillError, match="at most 64 tokens"):
        bench_models([model_dirs[0]], lengths=[128], repeats=1, device="cpu")
    with pytest.raises(PolydistillError, match="No models"):
        bench_models([])


# --------------------------------------------------------------------------------------------- CLI


def _app():
    from polydistill.cli import bench as bench_cli

    app = typer.Typer()

    @app.callback()
    def _root():  # keep 'bench' a sub-command even when it is the only one registered
        pass

    bench_cli.register(app)
    return app


def test_cli_writes_json_and_table(model_dirs, tmp_path):
    teacher, student = model_dirs
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(_app(), ["bench", "-m", str(teacher), "-m", str(student), "--lengths", "8",
                                         "--batch-size", "4", "--repeats", "2", "--warmup", "0",
                                         "--threads", "1", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["baseline"] == "teacher"
    assert set(data["ratios"]) == {"teacher", "student"}
    for model in data["models"]:
        for timing in model["timings"].values():
            assert {clock: len(v) for clock, v in timing["samples_s"].items()} == {"wall": 2, "cpu": 2}
            assert all(s >= 0 for v in timing["samples_s"].values() for s in v)
    assert set(data["ratios"]["student"]["speedup"]) == {"wall", "cpu"}
    assert "student" in result.output and "speed (wall clock)" in result.output
    assert not list(tmp_path.glob(".bench.json.*"))  # atomic: no temporary left behind


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lengths", "32,abc"], "comma-separated"),
        (["--lengths", "0"], "positive"),
        (["-m", "/nonexistent/model"], "does not exist"),
        (["--clock", "gpu"], "--clock"),
    ],
)
def test_cli_bad_input_is_one_clear_error(model_dirs, args, message):
    result = CliRunner().invoke(_app(), ["bench", "-m", str(model_dirs[0]), *args, "--device", "cpu"])
    assert isinstance(result.exception, PolydistillError)
    assert message in str(result.exception)


def test_cli_main_exit_code_2(model_dirs, capsys):
    """Through the real entry point: one sentence on stderr and exit code 2, no traceback."""
    from polydistill.cli import app, main

    names = {c.name for c in app.registered_commands}
    if len(names) < 2:
        pytest.skip("only one command registered yet: typer would not treat 'bench' as a sub-command")
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "-m", str(Path("/nonexistent/model"))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


@pytest.mark.slow
def test_bench_real_e5_parameter_split(e5_dir):
    """multilingual-e5-small: 250,037 × 384 word embeddings dominate; 12 layers of 1.77 M parameters."""
    report = bench_models([e5_dir], lengths=[8], batch_size=2, repeats=1, warmup=0, threads=1, device="cpu")
    params = report.models[0].params
    assert params.word_embedding == 250_037 * 384
    assert params.embedding == params.word_embedding + 512 * 384 + 2 * 384 + 2 * 384  # + positions, types, LN
    per_layer = 4 * (384 * 384 + 384) + (384 * 1536 + 1536) + (1536 * 384 + 384) + 2 * (2 * 384)
    assert params.encoder == 12 * per_layer
    assert params.other == 384 * 384 + 384  # the pooler
    assert report.models[0].shape["attn_implementation"] == "sdpa"

"""Runtime candidates (issue #36) on tiny models: every runtime's output loads with that runtime's standard
loader, ONNX graphs are fused by onnxruntime's transformer optimiser, ``export --runtime auto`` records
every candidate's timings and gate result with the machine profile and never ships a candidate that failed
its gate, and ``bench --runtimes`` measures models side by side in several runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from factories import CORPUS, make_labelled_dir, make_model, make_model_dir
from polydistill.cli import main
from polydistill.errors import PolydistillError
from polydistill.export.runtimes import OPENVINO_FILE, export_runtime, installed

FIX = Path(__file__).parent / "fixtures" / "data"
TEXTS = [*CORPUS, "hello", "jazz paris", " ".join(CORPUS[:3])]
needs_openvino = pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed (polydistill[openvino])")


def _scaled(root: Path, arch: str = "bert", task: str = "sequence", name: str | None = None, **kwargs) -> Path:
    """A tiny model whose classifier is scaled so that argmax is not a coin toss."""
    model, tokenizer = make_model(arch, task, **kwargs)
    with torch.no_grad():
        for module_name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and module_name in ("classifier", "classifier.out_proj"):
                module.weight.mul_(10.0)
    out = root / (name or f"{arch}-{task}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _reference(source: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    batch = tokenizer(TEXTS, padding=True, return_tensors="np")
    model = AutoModelForSequenceClassification.from_pretrained(source).eval()
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
    return batch, logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from test_distill_tasks import tiny_task

    root = tmp_path_factory.mktemp("runtimes")
    return {"root": root, "source": _scaled(root), "calibration": tiny_task("sequence", n_train=32, n_dev=8)}


def _export(tiny, runtime: str) -> Path:
    out = tiny["root"] / runtime
    if not out.exists():
        calibration = tiny["calibration"] if runtime.endswith("static") or runtime == "openvino-int8" else None
        export_runtime(tiny["source"], out, runtime, calibration_data=calibration, calibration_examples=16,
                       calibration_max_length=32)
    return out


def _record(folder: Path) -> dict:
    return json.loads((folder / "polydistill.json").read_text())["export"]


# --------------------------------------------------------------------- standard loaders, one runtime each


def test_torch_bf16_is_an_hf_directory_automodel_loads(tiny):
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification

    out = _export(tiny, "torch-bf16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert model.dtype == torch.bfloat16
    batch, reference = _reference(tiny["source"])
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy()
    assert (logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9
    record = _record(out)
    assert record["runtime"] == "torch-bf16" and record["format"] == "safetensors" and record["dtype"] == "bfloat16"
    assert record["machine"]["label"] and record["check"]["argmax_agreement"] >= 0.8
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "onnx" not in card.split("---")[1]


@pytest.mark.parametrize("runtime", ["onnx-fp32", "onnx-int8", "onnx-int8-static", "onnx-int8-unfused"])
def test_onnx_runtimes_are_fused_and_load_with_an_inference_session(tiny, runtime):
    import onnx
    import onnxruntime as ort

    out = _export(tiny, runtime)
    ops = {node.op_type for node in onnx.load(str(out / "model.onnx")).graph.node}
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    batch, reference = _reference(tiny["source"])
    logits = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})[0]
    record = _record(out)
    if runtime == "onnx-int8-unfused":  # what export --quantize int8 ships: no contrib operators in the file
        assert "fusion" not in record and not ops & {"Attention", "QAttention", "SkipLayerNormalization"}
        assert "MatMulInteger" in ops and (logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9
        return
    fused = record["fusion"]["fused_operators"]
    assert fused["Attention"] == 4 and fused["SkipLayerNormalization"] == 8 and fused["BiasGelu"] == 4  # 4 layers
    if runtime == "onnx-fp32":
        assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= ops
        assert np.abs(logits - reference).max() <= 1e-4
    else:
        assert (logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9
    if runtime == "onnx-int8":
        assert "QAttention" in ops and record["quantization"] == "int8-dynamic"  # attention quantised too
    if runtime == "onnx-int8-static":
        assert "QuantizeLinear" in ops and record["quantization"] == "int8-static"
        assert record["quantization_settings"]["calibration"]["examples"] == 16


@needs_openvino
@pytest.mark.parametrize("runtime", ["openvino", "openvino-int8"])
def test_openvino_ir_loads_with_core_read_model(tiny, runtime):
    import openvino as ov

    out = _export(tiny, runtime)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(out / OPENVINO_FILE)), "CPU")
    batch, reference = _reference(tiny["source"])
    logits = compiled({name: batch[name] for name in (i.get_any_name() for i in compiled.inputs)})[compiled.output(0)]
    if runtime == "openvino":
        assert np.abs(logits - reference).max() <= 1e-4
    else:
        assert (logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9
    assert {"config.json", "tokenizer.json", "openvino_model.bin"} <= {p.name for p in out.iterdir()}
    record = _record(out)
    assert record["format"] == "openvino" and record["runtime"] == runtime
    assert "library_name: openvino" in (out / "README.md").read_text()


@needs_openvino
def test_evaluate_and_bench_load_openvino_dirs(tiny):
    from polydistill.bench.measure import bench_models
    from polydistill.export.runtimes import load_for_inference

    out = _export(tiny, "openvino")
    model = load_for_inference(out)
    assert model.runtime_info()["runtime"] == "openvino"
    report = bench_models([tiny["source"], out], lengths=(8,), batch_size=2, repeats=1, warmup=0, threads=1,
                          device="cpu").to_dict()
    assert [m["shape"]["runtime"] for m in report["models"]] == ["torch", "openvino"]
    assert report["models"][1]["params"]["total"] == report["models"][0]["params"]["total"]


@pytest.mark.parametrize("arch", ["xlm-roberta", "electra"])
def test_fusion_on_other_families(tmp_path, arch):
    out = tmp_path / "onnx"
    export_runtime(make_model_dir(tmp_path, arch, "sequence"), out, "onnx-fp32")
    fused = _record(out)["fusion"]["fused_operators"]
    assert fused["Attention"] == 4 and fused["SkipLayerNormalization"] == 8 and fused["BiasGelu"] == 4
    assert _record(out)["check"]["max_abs_diff"] <= 1e-4


def test_runtime_errors(tiny, tmp_path):
    with pytest.raises(PolydistillError, match="calibrated on task data"):
        export_runtime(tiny["source"], tmp_path / "x", "onnx-int8-static")
    with pytest.raises(PolydistillError, match="Unknown runtime"):
        export_runtime(tiny["source"], tmp_path / "x", "tensorrt")
    with pytest.raises(PolydistillError, match="already an exported model"):
        export_runtime(_export(tiny, "onnx-int8"), tmp_path / "x", "onnx-fp32")


# --------------------------------------------------------------------------------------- auto


def test_export_auto_records_every_candidate_and_the_machine(tiny, tmp_path):
    from polydistill.bench.select import export_auto
    from polydistill.export.machine import machine_profile
    from polydistill.export.runtimes import load_for_inference

    candidates = ["torch-fp32", "torch-bf16", "onnx-int8", *(["openvino"] if installed("openvino") else [])]
    result = export_auto(tiny["source"], tmp_path / "auto", serve="4x16,1x8", candidates=candidates, repeats=1,
                         threads=1, texts=TEXTS)
    record = _record(tmp_path / "auto")
    selection = record["selection"]
    assert record == json.loads(json.dumps(result.record))
    assert record["machine"]["label"] == machine_profile(threads=1).label
    assert selection["serve"] == ["b4/L16", "b1/L8"] and set(selection["candidates"]) == set(candidates)
    for cand in selection["candidates"].values():
        assert set(cand["median_s"]) == {"b4/L16", "b1/L8"} and cand["score"] >= 1.0
        assert "passed" in cand["gate"] and cand["gate"]["compared"] == len(TEXTS)
    chosen = selection["chosen"]
    assert record["runtime"] == chosen and selection["candidates"][chosen]["chosen"]
    assert selection["candidates"][chosen]["gate"]["passed"]
    assert selection["candidates"][chosen]["score"] == min(c["score"] for c in selection["candidates"].values()
                                                           if c["gate"]["passed"])
    assert selection["candidates"]["onnx-int8"]["fusion"]["Attention"] == 4
    assert not (tmp_path / "auto" / ".candidates").exists()
    model = load_for_inference(tmp_path / "auto")  # the chosen runtime's own loader
    assert model(input_ids=torch.tensor([[2, 5, 6, 3]])).logits.shape == (1, 3)


def test_export_auto_never_ships_a_candidate_that_failed_the_gate(tiny, tmp_path, monkeypatch):
    """Every candidate but fp32 PyTorch fails its gate: whatever the timings, torch-fp32 is shipped."""
    from polydistill.bench import select

    real = select.measure_gates

    def failing(reference, candidates, *args, **kwargs):
        gates, record = real(reference, candidates, *args, **kwargs)
        return {name: gate if name == "torch-fp32" else select.judge(agreement=0.5) for name, gate in gates.items()}, record

    monkeypatch.setattr(select, "measure_gates", failing)
    select.export_auto(tiny["source"], tmp_path / "auto", serve="2x8", candidates=["torch-fp32", "onnx-int8",
                       "onnx-fp32"], repeats=1, threads=1)
    selection = _record(tmp_path / "auto")["selection"]
    assert selection["chosen"] == "torch-fp32"
    assert "fidelity gate" in selection["candidates"]["onnx-fp32"]["why_not"]
    assert (tmp_path / "auto" / "model.safetensors").is_file() and not list((tmp_path / "auto").glob("*.onnx"))
    with pytest.raises(PolydistillError, match="No candidate runtime passed"):
        select.export_auto(tiny["source"], tmp_path / "none", serve="2x8", candidates=["onnx-int8"], repeats=1,
                           threads=1)


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_cli_export_auto_gates_on_labelled_data(tmp_path, capsys):
    """Per-language F1 of every candidate on tsm test examples, static int8 calibrated on its train split."""
    from polydistill.data import load_task_data

    labels = load_task_data("tsm", "english", data_root=FIX).label_names
    make_labelled_dir(tmp_path / "pt", labels)
    code, out, err = run(["export", str(tmp_path / "pt"), "--out", str(tmp_path / "auto"), "--runtime", "auto",
                          "--dataset", "tsm", "--languages", "english,spanish", "--data-root", str(FIX),
                          "--serve", "2x16", "--repeats", "1", "--threads", "1", "--calibration-examples", "8",
                          "--candidates", "torch-fp32,onnx-fp32,onnx-int8-static"], capsys)
    assert code == 0, err
    selection = _record(tmp_path / "auto")["selection"]
    assert selection["gate"]["labels"] and set(selection["gate"]["reference_f1"]) == {"english", "spanish"}
    for name in ("torch-fp32", "onnx-fp32", "onnx-int8-static"):
        gate = selection["candidates"][name]["gate"]
        assert set(gate["f1_delta"]) == {"english", "spanish"}
    assert selection["candidates"]["onnx-fp32"]["gate"]["agreement"] == 1.0
    assert "machine:" in out and "exported" in out and selection["chosen"] in out


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "tensorrt"], "Unknown runtime"),
    (["--runtime", "onnx-int8", "--quantize", "none"], "--quantize"),
    (["--runtime", "auto", "--serve", "32"], "batch×length"),
    (["--runtime", "auto", "--serve", "2x999"], "at most"),
])
def test_cli_runtime_bad_input_exit_2(tiny, tmp_path, capsys, argv, message):
    code, _, err = run(["export", str(tiny["source"]), "--out", str(tmp_path / "o"), *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------- bench


def test_best_runtime_ratios_from_canned_timings():
    from polydistill.bench.measure import Case, CaseTiming, ModelResult, ParamCounts, compute_ratios

    case = Case("cpu", 32, 8)
    counts = ParamCounts(total=10, embedding=5, word_embedding=4, encoder=4, other=1)

    def result(name, source, runtime, seconds):
        return ModelResult(f"{source}:{runtime}", name, counts, 1, 1, {}, {case.key: CaseTiming(case, {"wall": [seconds]})},
                           source=source, runtime=runtime)

    models = [result("t", "teacher", "torch-fp32", 8.0), result("t", "teacher", "onnx-int8", 2.0),
              result("s", "student", "torch-fp32", 4.0), result("s", "student", "onnx-int8", 0.5)]
    ratios = compute_ratios(models)
    assert ratios["student:onnx-int8"]["speedup"]["wall"][case.key] == 16.0  # vs the teacher's fp32 PyTorch
    assert ratios["student:onnx-int8"]["speedup_vs_baseline_best"]["wall"][case.key] == 4.0  # vs its int8 ONNX
    assert ratios["teacher:onnx-int8"]["speedup_vs_baseline_best"]["wall"][case.key] == 1.0


def test_cli_bench_runtimes_side_by_side(tmp_path, capsys):
    teacher = make_model_dir(tmp_path, "bert", "sequence", name="teacher")
    student = make_model_dir(tmp_path, "bert", "sequence", name="student", num_hidden_layers=2)
    code, out, err = run(["bench", str(teacher), str(student), "--runtimes", "onnx-int8,torch-bf16", "--lengths", "8",
                          "--batch-size", "2", "--repeats", "1", "--warmup", "0", "--threads", "1",
                          "--out", str(tmp_path / "bench.json")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "bench.json").read_text())
    names = [m["name"] for m in report["models"]]
    assert names == ["teacher:torch-fp32", "teacher:onnx-int8", "teacher:torch-bf16", "student:onnx-int8",
                     "student:torch-bf16"]
    assert report["baseline"] == "teacher:torch-fp32"
    shapes = {m["name"]: m["shape"] for m in report["models"]}
    assert shapes["student:onnx-int8"]["runtime"] == "onnxruntime" and shapes["student:torch-bf16"]["dtype"] == "bfloat16"
    best = report["settings"]["baseline_best"]["wall"]
    assert set(best) == set(report["cases"])
    for key, entry in best.items():
        assert entry["runtime"] in ("torch-fp32", "onnx-int8", "torch-bf16")
        ratio = report["ratios"]["student:onnx-int8"]["speedup_vs_baseline_best"]["wall"][key]
        timing = next(m for m in report["models"] if m["name"] == "student:onnx-int8")["timings"][key]
        assert ratio == pytest.approx(entry["median_s"] / timing["median_s"]["wall"])
    assert report["machine"] and report["machine"] in out and "best runtime" in out
    code, _, err = run(["bench", str(teacher), "--runtimes", "onnx-int8-static"], capsys)
    assert code == 2 and "calibrated" in err

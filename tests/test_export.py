"""polydistill export: ONNX fp32 / int8 of tiny models of every architecture, the runtime wrapper,
evaluate / bench on exported directories, the model card, provenance, the CLI and Hub push (offline)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from factories import ARCHS, CORPUS, make_labelled_dir, make_model, make_model_dir
from polydistill.cli import main
from polydistill.errors import PolydistillError
from polydistill.export import ONNX_FILE, export_model, is_exported_dir, load_exported

FIX = Path(__file__).parent / "fixtures" / "data"
# Longer than the traced sentences, with padding, plus single words: dynamic axes get exercised.
SENTENCES = [*CORPUS, "hello", "jazz paris", " ".join(CORPUS[:4]), "quel temps fait il à paris aujourd hui hallo welt"]


def _more_sentences(n: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = sorted({w for line in CORPUS for w in line.split()})
    return SENTENCES + [" ".join(rng.sample(words, rng.randint(2, 12))) for _ in range(n)]


def _scaled_head_dir(root: Path, arch: str, task: str, factor: float = 10.0) -> Path:
    """A tiny model whose classifier is scaled up so that argmax is meaningful (random tiny models have
    near-uniform logits)."""
    model, tokenizer = make_model(arch, task)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and name in ("classifier", "classifier.out_proj"):
                module.weight.mul_(factor)
    out = root / f"{arch}-{task}-scaled"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _reference(model_dir: Path, sentences: list[str]):
    """PyTorch outputs of ``model_dir`` and the padded batch they came from."""
    from polydistill.modeling import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir).eval()
    batch = tokenizer(sentences, padding=True, truncation=True, max_length=40, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state), batch


def _onnx_outputs(out_dir: Path, batch):
    model = load_exported(out_dir)
    with torch.inference_mode():
        result = model(**batch)
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


# ------------------------------------------------------------------------------------ fp32 / int8


@pytest.mark.parametrize("task", ["sequence", "token"])
@pytest.mark.parametrize("arch", ARCHS)
def test_fp32_export_matches_pytorch(tmp_path, arch, task):
    source = make_model_dir(tmp_path, arch, task)
    result = export_model(source, tmp_path / "onnx", quantize="none")
    ref, batch = _reference(source, SENTENCES)
    got = _onnx_outputs(tmp_path / "onnx", batch)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() <= 1e-4
    assert result.record["quantization"] == "none" and result.record["check"]["max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == [ONNX_FILE]


@pytest.mark.parametrize("task", ["sequence", "token"])
@pytest.mark.parametrize("arch", ARCHS)
def test_int8_dynamic_argmax_agrees(tmp_path, arch, task):
    source = _scaled_head_dir(tmp_path, arch, task)
    result = export_model(source, tmp_path / "int8")  # int8 (dynamic) is the default
    assert result.record["quantization"] == "int8-dynamic"
    ref, batch = _reference(source, _more_sentences())
    got = _onnx_outputs(tmp_path / "int8", batch)
    if task == "token":  # every real (non-padding) position
        mask = batch["attention_mask"].bool()
        ref, got = ref[mask], got[mask]
    agreement = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    assert agreement >= 0.95, agreement
    assert result.record["onnx_bytes"] > 0 and result.record["onnx_fp32_bytes"] > 0


def test_int8_static_with_calibration(tmp_path):
    from test_distill_tasks import tiny_task

    source = _scaled_head_dir(tmp_path, "bert", "sequence")
    calibration = tiny_task("sequence", n_train=64, n_dev=8)
    result = export_model(source, tmp_path / "static", quantize="int8", calibration_data=calibration,
                          calibration_examples=32, calibration_max_length=32)
    record = result.record
    assert record["quantization"] == "int8-static"
    assert record["quantization_settings"]["calibration"]["examples"] == 32
    assert record["quantization_settings"]["calibration"]["dataset"] == "tiny-sequence"
    ref, batch = _reference(source, _more_sentences())
    got = _onnx_outputs(tmp_path / "static", batch)
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean().item() >= 0.95


@pytest.mark.parametrize("arch", ["xlm-roberta", "deberta-v2"])
def test_bare_encoder_export(tmp_path, arch):
    source = make_model_dir(tmp_path, arch, "base")
    export_model(source, tmp_path / "fp32", quantize="none")
    export_model(source, tmp_path / "int8")
    ref, batch = _reference(source, SENTENCES)
    mask = batch["attention_mask"].bool()
    fp32, int8 = _onnx_outputs(tmp_path / "fp32", batch), _onnx_outputs(tmp_path / "int8", batch)
    assert (fp32 - ref)[mask].abs().max().item() <= 1e-4
    cosine = torch.nn.functional.cosine_similarity(int8[mask], ref[mask], dim=-1)
    assert cosine.min().item() >= 0.99
    assert load_exported(tmp_path / "fp32").task == "base"


# ------------------------------------------------------------------------- the exported directory


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A weight-copy student (so it has provenance) of a tiny teacher, exported fp32 and int8."""
    from polydistill.student.build import build_student

    root = tmp_path_factory.mktemp("exported")
    teacher = make_model_dir(root, "xlm-roberta", "sequence")
    student = root / "student"
    build_student(teacher, student, layers=2)
    export_model(student, root / "fp32", quantize="none")
    export_model(student, root / "int8")
    return {"teacher": teacher, "student": student, "fp32": root / "fp32", "int8": root / "int8"}


def test_loads_with_onnxruntime_and_transformers_alone(exported):
    import onnxruntime as ort
    from transformers import AutoConfig, AutoTokenizer

    out = exported["int8"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    session = ort.InferenceSession(str(out / ONNX_FILE), providers=["CPUExecutionProvider"])
    batch = tokenizer(SENTENCES[:3], padding=True, return_tensors="np")
    logits = session.run(None, {i.name: batch[i.name] for i in session.get_inputs()})[0]
    assert logits.shape == (3, config.num_labels)
    assert np.isfinite(logits).all()
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]


def test_runtime_wrapper_behaves_like_a_model(exported):
    model = load_exported(exported["fp32"])
    assert model.config.model_type == "xlm-roberta" and model.task == "sequence"
    assert next(model.parameters()).device.type == "cpu"
    assert model.eval() is model and model.train(False) is model
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    out = model(input_ids=ids, attention_mask=(ids != 1).long(), token_type_ids=torch.zeros_like(ids))
    assert isinstance(out.logits, torch.Tensor) and out.logits.shape == (2, model.config.num_labels)
    assert model(input_ids=ids).logits.shape == (2, model.config.num_labels)  # the mask defaults to ones
    with pytest.raises(PolydistillError, match="inference only"):
        model.train()
    with pytest.raises(PolydistillError, match="--device cpu"):
        model.to("cuda")
    with pytest.raises(PolydistillError, match="output_hidden_states"):
        model(input_ids=ids, output_hidden_states=True)
    assert model.runtime_info()["provider"] == "CPUExecutionProvider"
    assert is_exported_dir(exported["fp32"]) and not is_exported_dir(exported["student"])


def test_parameter_counts_without_provenance(exported, tmp_path):
    recorded = load_exported(exported["fp32"]).parameter_counts()
    bare = tmp_path / "bare"
    shutil.copytree(exported["fp32"], bare)
    (bare / "polydistill.json").unlink()  # an ONNX directory polydistill did not write
    counted = load_exported(bare).parameter_counts()
    assert recorded.encoder > 0 and counted.encoder == 0
    assert 0.9 * recorded.total <= counted.total <= 1.1 * recorded.total  # the initializers (plus folded constants)


def test_provenance_extended_by_export_step(exported):
    prov = json.loads((exported["int8"] / "polydistill.json").read_text())
    student_prov = json.loads((exported["student"] / "polydistill.json").read_text())
    assert prov["teacher_layers"] == student_prov["teacher_layers"]  # the student's story is kept
    record = prov["export"]
    assert record["format"] == "onnx" and record["file"] == ONNX_FILE
    assert record["quantization"] == "int8-dynamic"
    assert record["opset"] == 17 and record["onnxruntime"]
    assert record["source"] == str(exported["student"])
    assert record["onnx_bytes"] == (exported["int8"] / ONNX_FILE).stat().st_size
    assert record["source_weights_bytes"] == (exported["student"] / "model.safetensors").stat().st_size
    assert record["onnx_fp32_bytes"] > 0
    assert record["parameters"]["total"] == student_prov["parameters"]
    assert {"config.json", "README.md", "polydistill.json", "tokenizer.json", ONNX_FILE} <= {
        p.name for p in exported["int8"].iterdir()}
    assert not list(exported["int8"].glob("*.safetensors"))


def test_card_validates_and_has_tags(exported):
    from huggingface_hub import ModelCard

    for kind in ("fp32", "int8"):
        card = ModelCard.load(exported[kind] / "README.md")
        data = card.data.to_dict()
        assert {"polydistill", "export", "onnx"} <= set(data["tags"])
        assert ("int8" in data["tags"]) == (kind == "int8")
        assert data["pipeline_tag"] == "text-classification"
        assert data["library_name"] == "onnx"
        assert "exported to ONNX" in card.text and "ort.InferenceSession" in card.text


def test_external_data_is_consolidated(tmp_path):
    import onnx
    import onnxruntime as ort

    from polydistill.export.convert import _consolidate_external_data

    export_model(make_model_dir(tmp_path, "bert", "sequence"), tmp_path / "onnx", quantize="none")
    folder = tmp_path / "split"
    folder.mkdir()
    model = onnx.load(str(tmp_path / "onnx" / ONNX_FILE))
    onnx.save_model(model, str(folder / ONNX_FILE), save_as_external_data=True, all_tensors_to_one_file=False,
                    size_threshold=0)  # one file per tensor, as the tracer writes past 2 GB
    assert len(list(folder.iterdir())) > 5
    _consolidate_external_data(folder / ONNX_FILE)
    assert sorted(p.name for p in folder.iterdir()) == [ONNX_FILE, f"{ONNX_FILE}_data"]
    ort.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------------------- errors


def test_clear_errors(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    source = make_model_dir(tmp_path, "bert", "sequence")
    with pytest.raises(PolydistillError, match="does not exist"):
        export_model(tmp_path / "missing", tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolydistillError, match="no config.json"):
        export_model(tmp_path / "empty", tmp_path / "a")
    distil = tmp_path / "distilbert"
    DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2,
                                                         hidden_dim=32)).save_pretrained(distil)
    with pytest.raises(PolydistillError, match="not supported"):
        export_model(distil, tmp_path / "a")
    no_weights = tmp_path / "no-weights"
    shutil.copytree(source, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(PolydistillError, match="weights"):
        export_model(no_weights, tmp_path / "a")
    with pytest.raises(PolydistillError, match="int8 or none"):
        export_model(source, tmp_path / "a", quantize="int4")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(PolydistillError, match="already exists"):
        export_model(source, tmp_path / "taken")
    export_model(source, tmp_path / "onnx", quantize="none")
    with pytest.raises(PolydistillError, match="already an exported model"):
        export_model(tmp_path / "onnx", tmp_path / "again")
    export_model(source, tmp_path / "onnx", quantize="none", overwrite=True)  # --overwrite replaces


def test_missing_runtime_is_one_sentence(monkeypatch, tmp_path):
    from polydistill.export.runtime import require_runtime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(PolydistillError, match=r"pip install polydistill\[export\]"):
        require_runtime()
    with pytest.raises(PolydistillError, match=r"pip install polydistill\[export\]"):
        export_model(make_model_dir(tmp_path, "bert", "sequence"), tmp_path / "out")


def test_package_imports_without_onnx():
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
            "import polydistill.cli, polydistill.export, polydistill.hub\n"
            "from polydistill.export.runtime import runtime_info\n"
            "print(runtime_info()['onnxruntime'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("not installed")


# ------------------------------------------------------------------------ evaluate and bench


@pytest.mark.parametrize("task", ["sequence", "token"])
def test_evaluate_exported_fp32_matches_pytorch(tmp_path, task):
    from polydistill.evaluate import evaluate_model
    from polydistill.evaluate.evaluate import predict
    from test_distill_tasks import tiny_model, tiny_task

    data = tiny_task(task, n_train=16, n_dev=24)
    model, tokenizer = tiny_model(data)
    source = tmp_path / "pt"
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    export_model(source, tmp_path / "onnx", quantize="none")

    pt = evaluate_model(source, None, data, split="test", random_runs=2)
    ox = evaluate_model(tmp_path / "onnx", None, data, split="test", random_runs=2)
    assert ox.overall == pt.overall and ox.per_language == pt.per_language
    assert predict(load_exported(tmp_path / "onnx"), tokenizer, data, "test") == predict(model, tokenizer, data, "test")


def test_bench_runs_exported_models_side_by_side(tmp_path):
    from polydistill.architectures import count_parameters
    from polydistill.bench.measure import bench_models

    source = make_model_dir(tmp_path, "bert", "sequence")
    export_model(source, tmp_path / "int8")
    report = bench_models([source, tmp_path / "int8"], lengths=(8,), batch_size=2, repeats=1, warmup=0,
                          threads=1, device="cpu").to_dict()
    machine = report["settings"]["machine"]
    assert machine["torch_threads"] == 1
    assert "avx512_vnni" in machine["cpu_flags"] and "CPUExecutionProvider" in machine["onnxruntime"]["available_providers"]
    pt, ox = report["models"]
    assert pt["shape"]["runtime"] == "torch"
    assert ox["shape"]["runtime"] == "onnxruntime" and ox["shape"]["provider"] == "CPUExecutionProvider"
    assert ox["shape"]["ort_threads"] == 1 and ox["shape"]["quantization"] == "int8-dynamic"
    from polydistill.modeling import load_model

    assert ox["params"]["total"] == count_parameters(load_model(source)).total
    assert ox["weights_bytes"] == (tmp_path / "int8" / ONNX_FILE).stat().st_size
    assert set(ox["timings"]) == set(pt["timings"])


# ------------------------------------------------------------------------------------ the CLI


def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_export_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run(["export", "--help"], capsys)
    assert code == 0
    assert "--quantize" in out and "--calibration-data" in out and "--push-to-hub" in out


def test_cli_exports_end_to_end(tmp_path, capsys):
    source = make_model_dir(tmp_path, "xlm-roberta", "sequence")
    code, out, err = run(["export", str(source), "--out", str(tmp_path / "onnx"), "--quantize", "none"], capsys)
    assert code == 0, err
    assert "exported" in out and (tmp_path / "onnx" / ONNX_FILE).is_file()
    code, out, err = run(["export", "-m", str(source), "-o", str(tmp_path / "static"), "--calibration-data", "tsm",
                          "--languages", "english,spanish", "--data-root", str(FIX), "--calibration-examples", "16",
                          "--max-length", "32", "--threads", "1"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "static" / "polydistill.json").read_text())["export"]
    assert record["quantization"] == "int8-static"
    assert record["quantization_settings"]["calibration"]["languages"] == ["english", "spanish"]


def test_evaluate_and_bench_cli_take_exported_dirs(tmp_path, capsys):
    from polydistill.data import load_task_data

    labels = load_task_data("tsm", "english", data_root=FIX).label_names
    make_labelled_dir(tmp_path / "pt", labels)
    export_model(tmp_path / "pt", tmp_path / "onnx", quantize="none")
    reports = {}
    for name in ("pt", "onnx"):
        code, _, err = run(["evaluate", str(tmp_path / name), "--dataset", "tsm", "--languages", "english,spanish",
                            "--data-root", str(FIX), "--max-length", "32", "--out", str(tmp_path / f"{name}.json")],
                           capsys)
        assert code == 0, err
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["onnx"]["overall"] == reports["pt"]["overall"]
    code, out, err = run(["bench", str(tmp_path / "pt"), str(tmp_path / "onnx"), "--lengths", "8", "--repeats", "1",
                          "--warmup", "0", "--batch-size", "2", "--device", "cpu", "--threads", "1",
                          "--out", str(tmp_path / "bench.json")], capsys)
    assert code == 0, err
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert [m["shape"]["runtime"] for m in bench["models"]] == ["torch", "onnxruntime"]


@pytest.mark.parametrize("case", ["missing", "exists", "format", "both"])
def test_cli_bad_input_exit_2(tmp_path, capsys, case):
    source = make_model_dir(tmp_path, "bert", "sequence")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    argv = {
        "missing": ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        "exists": ["export", str(source), "--out", str(taken)],
        "format": ["export", str(source), "--out", str(tmp_path / "o"), "--format", "tflite"],
        "both": ["export", str(source), "-m", str(tmp_path / "other"), "--out", str(tmp_path / "o")],
    }[case]
    capsys.readouterr()  # drop the factory's progress bars
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ------------------------------------------------------------------------------------ the Hub


class FakeHub:
    """Records what HfApi would have been asked; nothing reaches the network."""

    def __init__(self, monkeypatch, fail: Exception | None = None):
        from huggingface_hub import HfApi

        self.calls: list[tuple[str, dict]] = []
        self.fail = fail
        hub = self

        def create_repo(self, repo_id, **kwargs):
            hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
            if hub.fail is not None:
                raise hub.fail
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs):
            kwargs["files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
            hub.calls.append(("upload_folder", kwargs))

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)


def test_push_to_hub_from_the_cli(tmp_path, capsys, monkeypatch):
    hub = FakeHub(monkeypatch)
    source = make_model_dir(tmp_path, "bert", "sequence")
    code, out, err = run(["export", str(source), "--out", str(tmp_path / "onnx"), "--push-to-hub", "me/tiny-onnx"],
                         capsys)
    assert code == 0, err
    (create, create_kwargs), (upload, upload_kwargs) = hub.calls
    assert create == "create_repo" and create_kwargs["repo_id"] == "me/tiny-onnx" and create_kwargs["exist_ok"]
    assert upload == "upload_folder" and upload_kwargs["repo_id"] == "me/tiny-onnx"
    assert Path(upload_kwargs["folder_path"]) == tmp_path / "onnx"
    assert {"README.md", ONNX_FILE, "config.json", "tokenizer.json", "polydistill.json"} <= set(upload_kwargs["files"])
    assert "me/tiny-onnx" in out


def test_push_model_dir_helper(tmp_path, monkeypatch):
    from huggingface_hub.errors import HfHubHTTPError

    from polydistill.hub import push_model_dir

    source = make_model_dir(tmp_path, "bert", "sequence")
    with pytest.raises(PolydistillError, match="no README.md"):
        push_model_dir(source, "me/x")  # a bare save_pretrained directory has no card
    export_model(source, tmp_path / "onnx", quantize="none")
    hub = FakeHub(monkeypatch)
    assert push_model_dir(tmp_path / "onnx", "me/x", token="hf_test") == "https://huggingface.co/me/x"
    assert all(kwargs.get("token") == "hf_test" for _, kwargs in hub.calls)
    with pytest.raises(PolydistillError, match="not a Hub repository id"):
        push_model_dir(tmp_path / "onnx", "a/b/c")
    try:  # the HTTP client of huggingface_hub 2.x, else 1.x
        import httpx2 as http
    except ImportError:
        import httpx as http
    response = http.Response(403, request=http.Request("POST", "https://huggingface.co/api/repos/create"))
    FakeHub(monkeypatch, fail=HfHubHTTPError("403 Forbidden", response=response))
    with pytest.raises(PolydistillError, match="refused the upload"):
        push_model_dir(tmp_path / "onnx", "me/x")

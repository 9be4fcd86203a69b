"""Hub ids in every command that takes a model (issue #31): a tiny model placed in a temporary Hugging Face
cache as ``fakeorg/tiny`` (the layout huggingface_hub writes: blobs, snapshots/<commit>, refs/main), with
HF_HUB_OFFLINE=1, run through finetune, student, distill (teacher as hub id), vocab reduce, evaluate, export
and compress on the real command line; a hub id that is neither local nor cached is one sentence."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from factories import make_model_dir
from polydistill.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "data"
FAST = ["--max-steps", "2", "--eval-steps", "1", "--batch-size", "8", "--logging-steps", "1"]
COMMIT = "4f1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def publish(cache: Path, repo_id: str, model_dir: Path, edit=None) -> Path:
    """Lay ``model_dir`` out in the cache ``cache`` as ``huggingface_hub`` does after a download of ``repo_id``:
    content-addressed blobs, snapshots/<commit>/<file> links to them, refs/main naming the commit."""
    from huggingface_hub.file_download import repo_folder_name

    repo = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        data = file.read_bytes()
        if edit is not None:
            data = edit(file.name, data)
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / file.relative_to(model_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache for this test only, offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for any subprocess
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _run(argv: list, capsys) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    return exit_info.value.code or 0, err


def _ok(argv: list, capsys) -> None:
    code, err = _run(argv, capsys)
    assert code == 0, err


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_model_command_takes_a_hub_id_from_the_offline_cache(hub_cache, tmp_path, capsys):
    base = make_model_dir(tmp_path / "made", "bert", "base", name="tiny")
    publish(hub_cache, "fakeorg/tiny", base)
    data = ["--dataset", "tsm", "--data-root", FIXTURES]

    # finetune: a bare encoder from the hub gets the dataset's head; the record names the hub id, not the snapshot
    teacher = tmp_path / "teacher"
    _ok(["finetune", "fakeorg/tiny", *data, "-l", "english,french", "--out", teacher, *FAST, "--lr", "5e-3"], capsys)
    assert _read(teacher / "run.json")["source"] == "fakeorg/tiny"

    # the fine-tuned teacher published as a hub id; its record claims a dev F1 of 0, so the teacher gate (which
    # reads run.json from the snapshot) must refuse it, by its hub id, unless --allow-weak-teacher
    def weak(name: str, data: bytes) -> bytes:
        if name != "run.json":
            return data
        record = json.loads(data)
        record["result"]["best_dev_f1"] = 0.0
        return json.dumps(record).encode()

    publish(hub_cache, "fakeorg/tiny-tsm", teacher, edit=weak)

    student = tmp_path / "student"
    _ok(["student", "fakeorg/tiny-tsm", "--out", student, "--layers", "2"], capsys)
    assert _read(student / "config.json")["num_hidden_layers"] == 2
    assert _read(student / "polydistill.json")["teacher"] == "fakeorg/tiny-tsm"

    kd = tmp_path / "kd"
    code, err = _run(["distill", "--teacher", "fakeorg/tiny-tsm", "--student", student, *data, "-l", "english",
                      "--out", kd, *FAST], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "fakeorg/tiny-tsm is too weak" in errors[0], err
    _ok(["distill", "--teacher", "fakeorg/tiny-tsm", "--student", student, *data, "-l", "english", "--out", kd,
         *FAST, "--allow-weak-teacher"], capsys)
    assert _read(kd / "run.json")["teacher"] == "fakeorg/tiny-tsm"
    assert (kd / "model.safetensors").is_file()

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world this is a small test corpus\nwhat is the weather like in paris today\n" * 5,
                      encoding="utf-8")
    reduced = tmp_path / "reduced"
    _ok(["vocab", "reduce", "fakeorg/tiny", "--corpus", corpus, "--out", reduced], capsys)
    record = _read(reduced / "polydistill.json")["vocab_reduction"]
    assert record["source"] == "fakeorg/tiny" and record["vocab_after"] < record["vocab_before"]

    # evaluate: seen / unseen come from the teacher's run.json, read through the hub id's snapshot
    report = tmp_path / "eval.json"
    _ok(["evaluate", "fakeorg/tiny-tsm", *data, "-l", "english,french,spanish", "--out", report], capsys)
    evaluation = _read(report)
    assert evaluation["model"] == "fakeorg/tiny-tsm" and evaluation["groups_from"] == "training record"
    assert evaluation["groups"]["seen"]["languages"] == ["english", "french"]

    exported = tmp_path / "exported"
    _ok(["export", "fakeorg/tiny-tsm", "--out", exported], capsys)
    assert (exported / "model.onnx").is_file()

    compressed = tmp_path / "compressed"
    _ok(["compress", "fakeorg/tiny-tsm", *data, "-l", "english", "--unseen-languages", "spanish", "--out",
         compressed, "--size", "tiny", "--max-steps", "2", "--no-wordfreq", "--calibration-size", "16",
         "--bench-lengths", "16", "--bench-repeats", "1", "--speedup-repeats", "1", "--max-length", "32",
         "--batch-size", "16", "--allow-weak-teacher"], capsys)
    assert _read(compressed / "report.json")["teacher"] == "fakeorg/tiny-tsm"
    assert (compressed / "model-int8" / "model.onnx").is_file()


@pytest.mark.parametrize("command", ["finetune", "student", "vocab-reduce", "evaluate"])
def test_a_hub_id_neither_local_nor_cached_is_one_sentence(hub_cache, tmp_path, capsys, command):
    out = tmp_path / "out"
    data = ["--dataset", "tsm", "--data-root", FIXTURES, "-l", "english"]
    argv = {"finetune": ["finetune", "fakeorg/absent", *data, "--out", out, *FAST],
            "student": ["student", "fakeorg/absent", "--out", out],
            "vocab-reduce": ["vocab", "reduce", "fakeorg/absent", "--wordfreq", "en", "--out", out],
            "evaluate": ["evaluate", "fakeorg/absent", *data, "--out", out]}[command]
    code, err = _run(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "'fakeorg/absent' is neither a local directory nor a model in the Hugging Face cache" in errors[0]
    assert "HF_HUB_OFFLINE" in errors[0] and str(hub_cache) in errors[0]
    assert not out.exists()


def test_resolve_model_dir_local_hub_and_path_spellings(hub_cache, tmp_path, monkeypatch):
    from polydistill.errors import PolydistillError
    from polydistill.modeling import is_hub_id, resolve_model_dir

    local = make_model_dir(tmp_path, "bert", "base", name="local")
    snapshot = publish(hub_cache, "fakeorg/tiny", local)
    assert resolve_model_dir(local) == local
    assert resolve_model_dir("fakeorg/tiny") == snapshot
    assert resolve_model_dir(Path("fakeorg/tiny")) == snapshot  # a Path spelled like a hub id is one too
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("local") == Path("local")  # an existing directory wins over the hub
    for spelling in ("./fakeorg/tiny", "a/b/c", str(tmp_path / "nope"), "~/nope-polydistill"):
        assert not is_hub_id(spelling)
        with pytest.raises(PolydistillError, match="does not exist; pass a model directory or a hub id"):
            resolve_model_dir(spelling)

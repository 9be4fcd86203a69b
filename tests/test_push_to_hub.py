"""``--push-to-hub REPO`` on every command that writes a model (finetune, distill, lm-distill, vocab reduce,
export, compress): one code path (``hub.push_model_dir``), tested against a fake Hub — ``HfApi``'s
``create_repo`` / ``upload_folder`` intercepted, recording what would be uploaded. A bad repo id is one
sentence before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import make_model_dir
from test_bad_inputs import FAST, _write_csv_dataset, check_one_sentence, run_cli
from test_distill_tasks import tiny_task


@pytest.fixture()
def fake_hub(monkeypatch):
    from huggingface_hub import HfApi

    uploads: list[dict] = []

    def create_repo(self, repo_id, **kwargs):
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        uploads.append({"repo": repo_id, "folder": folder, "files": sorted(p.name for p in folder.iterdir()),
                        "ignore": kwargs.get("ignore_patterns")})

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return uploads


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    task = tiny_task("sequence", n_train=32, n_dev=16)
    data = _write_csv_dataset(root / "data", task)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(task.splits["train"]["text"]) + "\n", encoding="utf-8")
    return make_model_dir(root, "bert", "base", name="base"), data, corpus


def test_every_model_writing_command_pushes_its_finished_output(world, fake_hub, tmp_path, capsys):
    base, data, corpus = world
    teacher = tmp_path / "teacher"
    commands = {
        "finetune": ["finetune", base, "--dataset", data, "--out", teacher, *FAST, "--lr", "5e-3"],
        "distill": ["distill", "--teacher", teacher, "--dataset", data, "--layers", "1", "--allow-weak-teacher",
                    "--out", tmp_path / "kd", *FAST],
        "lm-distill": ["lm-distill", base, "--corpus", corpus, "--layers", "1", "--max-steps", "1",
                       "--fit-teacher-head-steps", "1", "--batch-size", "4", "--out", tmp_path / "lm"],
        "vocab reduce": ["vocab", "reduce", teacher, "--corpus", corpus, "--out", tmp_path / "vocab"],
        "export": ["export", teacher, "--out", tmp_path / "onnx"],
    }
    for name, argv in commands.items():
        out = Path(argv[argv.index("--out") + 1])
        code, _, err = run_cli([*argv, "--push-to-hub", f"fakeorg/{name.replace(' ', '-')}"], capsys)
        assert code == 0, f"{name}: {err[-2000:]}"
        pushed = fake_hub[-1]
        assert pushed["repo"] == f"fakeorg/{name.replace(' ', '-')}" and pushed["folder"] == out, name
        assert {"config.json", "README.md"} <= set(pushed["files"]), (name, pushed["files"])
    assert len(fake_hub) == len(commands)
    # compress pushes its student and the deployable (REPO-int8)
    code, _, err = run_cli(["compress", teacher, "--dataset", data, "--size", "tiny",
                            "--no-wordfreq", "--calibration-size", "16", "--bench-lengths", "16",
                            "--bench-repeats", "1", "--max-steps", "2", "--bootstrap-resamples", "50",
                            "--allow-untrained-teacher", "--allow-weak-teacher", "--out", tmp_path / "cz",
                            "--push-to-hub", "fakeorg/cz"], capsys)
    assert code == 0, err[-2000:]
    assert [(u["repo"], u["folder"].name) for u in fake_hub[-2:]] == [("fakeorg/cz", "model"),
                                                                       ("fakeorg/cz-int8", "model-int8")]
    # a finished run re-run with --push-to-hub pushes what is there (nothing is trained again)
    code, out, _ = run_cli([*commands["finetune"], "--push-to-hub", "fakeorg/again"], capsys)
    assert code == 0 and fake_hub[-1]["repo"] == "fakeorg/again" and fake_hub[-1]["folder"] == teacher


@pytest.mark.parametrize("command", ["finetune", "vocab reduce"])
def test_a_bad_repo_id_is_one_sentence_before_any_work(world, fake_hub, tmp_path, capsys, command):
    base, data, corpus = world
    out = tmp_path / "out"
    argv = (["finetune", base, "--dataset", data, *FAST] if command == "finetune"
            else ["vocab", "reduce", base, "--corpus", corpus])
    code, _, err = run_cli([*argv, "--out", out, "--push-to-hub", "a/b/c"], capsys)
    assert code == 2 and "not a Hub repository id" in check_one_sentence(err)
    assert not out.exists() and not fake_hub

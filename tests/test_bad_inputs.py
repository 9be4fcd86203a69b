"""The bad-input catalogue of issue #12: every bad input is one sentence.

The rule: bad input gets one ``error: <sentence>`` line on stderr and exit code 2, never a Python
traceback, and loses nothing (no half-written output, no prior data deleted). Every case runs the
real command line through ``polydistill.cli.main``; the tiny models and data are built once per
module. A case is a function ``(world, tmp_path) -> Setup``; ``test_catalogue`` runs it and checks
the rule, then the case's own ``post`` check (e.g. that ``--overwrite`` then succeeds).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import pickle
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml

from factories import make_model_dir
from polydistill.cli import main
from test_distill_tasks import tiny_task

FAST = ["--max-steps", "2", "--eval-steps", "1", "--batch-size", "8", "--logging-steps", "1"]


# ---------------------------------------------------------------------------------------- fixtures


def _write_csv_dataset(folder: Path, task, rows_per_split: dict[str, int] | None = None) -> Path:
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        ds = task.splits[split]
        limit = len(ds) if rows_per_split is None else rows_per_split[split]
        with (folder / f"{split}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label", "language"])
            for row in list(ds)[:limit]:
                writer.writerow([row["text"], task.label_names[row["label"]], row["language"]])
    return folder


def _copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _run_quietly(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code or 0


def _finetune_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", str(model), "--dataset", str(data), "--out", str(out), *FAST, "--lr", "5e-3", *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("bad-inputs")
    task = tiny_task("sequence", n_train=32, n_dev=16)
    w = SimpleNamespace(root=root)
    w.base = make_model_dir(root, "bert", "base", name="base")
    w.data = _write_csv_dataset(root / "data", task)

    # a model directory without any tokenizer file
    w.no_tokenizer = _copy_model(w.base, root / "no-tokenizer")
    for path in w.no_tokenizer.iterdir():
        if path.name.startswith("tokenizer") or path.name in ("vocab.txt", "special_tokens_map.json"):
            path.unlink()
    # a complete model directory whose config.json is corrupt
    w.corrupt_config = _copy_model(w.base, root / "corrupt-config")
    (w.corrupt_config / "config.json").write_text("{not json", encoding="utf-8")
    # a complete model directory whose weights are corrupt
    w.corrupt_weights = _copy_model(w.base, root / "corrupt-weights")
    (w.corrupt_weights / "model.safetensors").write_bytes(b"garbage" * 10)
    # a teacher whose config asks for custom code (that would leave a marker when imported)
    w.marker = root / "REMOTE-CODE-RAN"
    w.remote = _copy_model(w.base, root / "remote-code")
    (w.remote / "custom_code.py").write_text(f"import pathlib\npathlib.Path({str(w.marker)!r}).write_text('ran')\n",
                                             encoding="utf-8")
    config = json.loads((w.remote / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoConfig": "custom_code.CustomConfig", "AutoModel": "custom_code.CustomModel",
                          "AutoModelForSequenceClassification": "custom_code.CustomClassifier"}
    (w.remote / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tok_config = json.loads((w.remote / "tokenizer_config.json").read_text(encoding="utf-8"))
    tok_config["auto_map"] = {"AutoTokenizer": ["custom_code.CustomTokenizer", None]}
    (w.remote / "tokenizer_config.json").write_text(json.dumps(tok_config), encoding="utf-8")

    # data: non-UTF-8 CSVs, header-only CSVs
    w.latin1 = _write_csv_dataset(root / "latin1", task)
    with (w.latin1 / "train.csv").open("ab") as handle:
        handle.write("caf\u00e9 na\u00efve jazz,music,en\n".encode("latin-1"))
    w.empty_csv = _write_csv_dataset(root / "empty-csv", task, {"train": 0, "validation": 0, "test": 0})

    # corpora for lm-distill and vocab reduce
    w.corpus = root / "corpus.txt"
    w.corpus.write_text("\n".join(list(task.splits["train"]["text"]) * 2) + "\n", encoding="utf-8")
    w.latin1_corpus = root / "latin1-corpus.txt"
    w.latin1_corpus.write_bytes("hello world\ncaf\u00e9 au lait\n".encode("latin-1"))
    w.empty_corpus = root / "empty-corpus.txt"
    w.empty_corpus.write_text("", encoding="utf-8")

    # a finished fine-tuning run (re-runs, evaluation, file modes)
    w.finished_argv = _finetune_argv(w.base, w.data, root / "finished")
    assert _run_quietly(w.finished_argv) == 0
    w.finished = root / "finished"

    # the work dir a killed run leaves: run with --keep-checkpoints, then remove the output
    kept = root / "kept"
    assert _run_quietly(_finetune_argv(w.base, w.data, kept, "--keep-checkpoints")) == 0
    shutil.rmtree(kept)
    w.kept_work = root / "kept.work"
    assert any((w.kept_work / "checkpoints").glob("checkpoint-*"))

    # a grid config (generic data, teacher only) and a results store without results
    w.grid_yaml = root / "grid.yaml"
    w.grid_yaml.write_text(yaml.safe_dump(_grid(w)), encoding="utf-8")
    w.empty_store = root / "store"
    (w.empty_store / "results").mkdir(parents=True)
    return w


def _grid(w, **changes) -> dict:
    config = {
        "name": "bad-inputs",
        "teachers": [{"name": "tiny", "model": str(w.base)}],
        "datasets": [{"name": str(w.data)}],
        "students": None,
        "teacher_training": {"max_steps": 1, "batch_size": 8, "eval_steps": 1},
        "teacher_gate_margin": None,
    }
    for key, value in changes.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return config


# ---------------------------------------------------------------------------------------- the runner


@dataclass
class Setup:
    argv: list[str]
    out: Path | None = None  # must not exist afterwards (or be unchanged when it existed before)
    needles: tuple[str, ...] = ()  # all must be in the error sentence (stdout for exit 0)
    forbidden: tuple[str, ...] = ()  # none may be in stderr
    code: int = 2
    hold: Callable[[], contextlib.AbstractContextManager] | None = None  # held while the command runs
    post: Callable[[], None] | None = None  # more checks after the command
    chdir: Path | None = None


def _snapshot(path: Path | None) -> dict[str, bytes] | None:
    if path is None or not path.exists():
        return None
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(path.rglob("*"))}


def _temporaries(out: Path) -> list[Path]:
    parent = out.parent
    if not parent.is_dir():
        return []
    return [*parent.glob(f".{out.name}.*.tmp"), *parent.glob(f".{out.name}.old")]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def check_one_sentence(err: str) -> str:
    """The error is exactly one ``error:`` line, the last thing on stderr, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower()]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0] and lines[-1].startswith("error: "), err  # nothing after it: one line
    return errors[0]


# ---------------------------------------------------------------------------------------- the cases

CASES: dict[str, Callable[[SimpleNamespace, Path], Setup]] = {}


def case(name: str, *marks):
    def register(fn):
        CASES[name] = (fn, marks)
        return fn
    return register


def _unwritable(tmp_path: Path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        folder.chmod(0o700)
        pytest.skip("running as root: a chmod 500 directory stays writable")
    return folder


def _blocker(tmp_path: Path) -> Path:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n", encoding="utf-8")
    return blocker


# 1. NaN loss -----------------------------------------------------------------------------------
@case("1-nan-loss")
def _(w, tmp_path):
    out = tmp_path / "ft"
    argv = ["finetune", w.base, "--dataset", w.data, "--out", out, *FAST, "--lr", "1e10"]

    def post():  # the remedy the sentence advertises works: a lower learning rate starts afresh
        assert (tmp_path / "ft.work" / "diverged.json").is_file()
        assert _run_quietly([str(a) for a in [*argv[:-2], "--lr", "5e-3"]]) == 0
        assert (out / "run.json").is_file()

    return Setup(argv, out, needles=("step", "ce", "changed settings start afresh"), post=post)


# 2. a stale work dir of another run ---------------------------------------------------------------
@case("2-stale-work-dir")
def _(w, tmp_path):
    out = tmp_path / "ft"
    shutil.copytree(w.kept_work, tmp_path / "ft.work")
    argv = _finetune_argv(w.base, w.data, out, "--lr", "1e-3")  # the kept run used 5e-3

    def post():
        assert (tmp_path / "ft.work" / "checkpoints").is_dir()  # the refusal deleted nothing
        assert _run_quietly([str(a) for a in [*argv, "--overwrite"]]) == 0  # --overwrite starts afresh
        assert (out / "config.json").is_file()

    return Setup(argv, out, needles=("learning_rate", "--overwrite"), post=post)


# 3. a model dir without tokenizer files -------------------------------------------------------------
@case("3-no-tokenizer-finetune")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.no_tokenizer, "--dataset", w.data, "--out", out, *FAST], out,
                 needles=("no tokenizer files", "tokenizer.json"))


@case("3-no-tokenizer-student")
def _(w, tmp_path):
    out = tmp_path / "student"
    return Setup(["student", w.no_tokenizer, "--out", out, "--layers", "2"], out, needles=("no tokenizer files",))


@case("3-no-tokenizer-evaluate")
def _(w, tmp_path):
    model = _copy_model(w.finished, tmp_path / "model")
    for path in model.glob("tokenizer*"):
        path.unlink()
    out = tmp_path / "report.json"
    return Setup(["evaluate", model, "--dataset", w.data, "--out", out], out, needles=("no tokenizer files",))


# 4. bounds ----------------------------------------------------------------------------------------
def _bound(flags: list[str], needle: str, command: str = "finetune"):
    def make(w, tmp_path):
        out = tmp_path / "out"
        if command == "finetune":
            argv = ["finetune", w.base, "--dataset", w.data, "--out", out, *flags]
        elif command == "distill":
            argv = ["distill", "--teacher", w.finished, "--dataset", w.data, "--out", out, *flags]
        else:  # evaluate
            out = tmp_path / "report.json"
            argv = ["evaluate", w.finished, "--dataset", w.data, "--out", out, *flags]
        return Setup(argv, out, needles=(needle,))
    return make


for _flags, _needle, _command in [
    (["--max-steps", "0"], "--max-steps", "finetune"),
    (["--epochs", "-1"], "--epochs", "finetune"),
    (["--lr", "-1e-3"], "--lr", "finetune"),
    (["--batch-size", "0"], "--batch-size", "finetune"),
    (["--batch-size", "0"], "--batch-size", "evaluate"),
    (["--w-att", "-1"], "att weight", "distill"),
    (["--w-hid", "nan"], "hid weight", "distill"),
    (["--temperature", "0"], "--temperature", "distill"),
]:
    case(f"4-{_command}{_flags[0]}={_flags[1]}")(_bound(_flags, _needle, _command))


case("4-distill--w-att-names-its-flag")(_bound(["--w-att", "-1"], "(--w-att)", "distill"))


def _grid_bound(changes: dict, needle: str):
    def make(w, tmp_path):
        config = tmp_path / "grid.yaml"
        config.write_text(yaml.safe_dump(_grid(w, **changes)), encoding="utf-8")
        out = tmp_path / "runs"
        return Setup(["grid", "run", config, "--work-dir", out, "--dry-run"], out, needles=(needle,))
    return make


for _name, _changes, _needle in [
    ("epochs", {"teacher_training": {"epochs": -1}}, "teacher_training.epochs"),
    ("learning-rate", {"teacher_training": {"learning_rate": -1e-3}}, "teacher_training.learning_rate"),
    ("kd-weight-negative", {"kd": {"weights": {"att": -1}}}, "att weight"),
    ("kd-weight-nan", {"kd": {"weights": {"hid": float("nan")}}}, "hid weight"),
]:
    case(f"4-grid-{_name}")(_grid_bound(_changes, _needle))


# 5. output paths ----------------------------------------------------------------------------------
def _output_argv(command: str, w, out: Path) -> tuple[list, Path]:
    """The command with ``out`` as its output (a file name for the commands that write one file)."""
    if command == "student":
        return ["student", w.base, "--out", out, "--layers", "2"], out
    if command == "evaluate":
        out = out / "report.json"
        return ["evaluate", w.finished, "--dataset", w.data, "--out", out], out
    if command == "grid-run":
        return ["grid", "run", w.grid_yaml, "--work-dir", out], out
    if command == "grid-report":
        return ["grid", "report", w.empty_store, "--out", out], out
    if command == "demo":
        return ["demo", "--out", out, "--quick"], out
    if command == "bench":
        out = out / "bench.json"
        return ["bench", w.base, "--out", out, "--repeats", "1", "--warmup", "0", "--lengths", "8",
                "--batch-size", "2", "--device", "cpu"], out
    if command == "vocab-reduce":
        return ["vocab", "reduce", w.base, "--out", out, "--corpus", w.corpus], out
    if command == "lm-distill":
        return ["lm-distill", w.base, "--corpus", w.corpus, "--out", out, "--layers", "2", "--max-steps", "1",
                "--fit-teacher-head-steps", "1", "--batch-size", "4"], out
    if command == "finetune":
        return _finetune_argv(w.base, w.data, out), out
    raise ValueError(command)


OUTPUT_COMMANDS = ("student", "evaluate", "grid-run", "grid-report", "demo", "bench", "vocab-reduce", "lm-distill",
                   "finetune")


def _parent_is_file(command):
    def make(w, tmp_path):
        blocker = _blocker(tmp_path)
        argv, out = _output_argv(command, w, blocker / "out")

        def post():
            assert blocker.read_text(encoding="utf-8") == "a file, not a folder\n"

        return Setup(argv, out, needles=(str(blocker), "is a file"), post=post)
    return make


def _unwritable_parent(command):
    def make(w, tmp_path):
        argv, out = _output_argv(command, w, _unwritable(tmp_path) / "out")
        return Setup(argv, out, needles=("not writable",))
    return make


def _pretend_unwritable(folder: Path):
    """os.access as a non-root user would answer it for ``folder`` (root may write anywhere)."""
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).resolve() == folder.resolve():
            return False
        return real_access(path, mode, *args, **kwargs)

    return lambda: mock.patch("os.access", access)


def _unwritable_simulated(command):
    def make(w, tmp_path):
        folder = tmp_path / "read-only"
        folder.mkdir()
        argv, out = _output_argv(command, w, folder / "out")
        return Setup(argv, out, needles=("not writable",), hold=_pretend_unwritable(folder))
    return make


for _command in OUTPUT_COMMANDS:
    case(f"5-{_command}-parent-is-a-file")(_parent_is_file(_command))
    case(f"5-{_command}-unwritable")(_unwritable_parent(_command))
    case(f"5-{_command}-unwritable-simulated")(_unwritable_simulated(_command))


def _failing(function: str, under: Path, error: int):
    """``tempfile.<function>`` raising OSError(``error``) for a directory under ``under``: what the
    machine does when a write is refused after the preflight passed (a race, a quota, a read-only mount)."""
    real = getattr(tempfile, function)

    def refuse(*args, **kwargs):
        folder = Path(kwargs.get("dir") or ".")
        if under.resolve() in (folder.resolve(), *folder.resolve().parents):
            raise OSError(error, os.strerror(error), str(folder))
        return real(*args, **kwargs)

    return lambda: mock.patch(f"tempfile.{function}", refuse)


@case("5-oserror-permission-denied-bench")
def _(w, tmp_path):
    argv, out = _output_argv("bench", w, tmp_path)
    return Setup(argv, out, needles=("Permission denied", str(tmp_path)), hold=_failing("mkstemp", tmp_path, errno.EACCES))


@case("5-oserror-read-only-student")
def _(w, tmp_path):
    argv, out = _output_argv("student", w, tmp_path / "student")
    return Setup(argv, out, needles=("read-only",), hold=_failing("mkdtemp", tmp_path, errno.EROFS))


@case("5-oserror-disk-full-student")
def _(w, tmp_path):
    argv, out = _output_argv("student", w, tmp_path / "student")
    return Setup(argv, out, needles=("disk is full",), hold=_failing("mkdtemp", tmp_path, errno.ENOSPC))


# 6. input files -----------------------------------------------------------------------------------
@case("6-non-utf8-csv")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.base, "--dataset", w.latin1, "--out", out, *FAST], out,
                 needles=("train.csv", "not UTF-8", "line 34"))


@case("6-non-utf8-csv-data-show")
def _(w, tmp_path):
    return Setup(["data", "show", w.latin1], None, needles=("train.csv", "not UTF-8"))


@case("6-non-utf8-corpus")
def _(w, tmp_path):
    out = tmp_path / "lm"
    return Setup(["lm-distill", w.base, "--corpus", w.latin1_corpus, "--out", out, "--layers", "2"], out,
                 needles=("latin1-corpus.txt", "not UTF-8", "line 2"))


@case("6-empty-corpus")
def _(w, tmp_path):
    out = tmp_path / "lm"
    return Setup(["lm-distill", w.base, "--corpus", w.empty_corpus, "--out", out, "--layers", "2",
                  "--fit-teacher-head-steps", "1"], out, needles=("corpus",))


class _Evil:
    """A pickle that creates a file when it is unpickled with the full (unsafe) unpickler."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _corrupt_checkpoint(filename: str):
    def make(w, tmp_path):
        out = tmp_path / "ft"
        work = tmp_path / "ft.work"
        shutil.copytree(w.kept_work, work)
        checkpoint = max((work / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        marker = tmp_path / "PICKLE-RAN"
        (checkpoint / filename).write_bytes(pickle.dumps(_Evil(marker)))

        def post():
            assert not marker.exists(), "the checkpoint's pickle was executed"
            assert (checkpoint / filename).is_file()  # nothing deleted

        return Setup(_finetune_argv(w.base, w.data, out), out, needles=(checkpoint.name, "cannot be read"), post=post)
    return make


case("6-corrupt-checkpoint-optimizer")(_corrupt_checkpoint("optimizer.pt"))
case("6-corrupt-checkpoint-rng-state")(_corrupt_checkpoint("rng_state.pth"))


# 7. lm-distill --layers larger than the teacher -----------------------------------------------------
@case("7-lm-distill-too-deep")
def _(w, tmp_path):
    out = tmp_path / "lm"
    argv = ["lm-distill", w.base, "--corpus", w.corpus, "--out", out, "--layers", "9", "--max-steps", "1",
            "--eval-steps", "1", "--fit-teacher-head-steps", "1", "--batch-size", "4"]

    def post():
        assert not (tmp_path / "lm.work").exists()  # nothing that blocks the corrected command
        fixed = [str(a) for a in argv]
        fixed[fixed.index("9")] = "2"
        assert _run_quietly(fixed) == 0 and (out / "config.json").is_file()

    return Setup(argv, out, needles=("--layers 9", "4 layers"), post=post)


# 8. leftovers and concurrency -----------------------------------------------------------------------
@case("8-leftover-temporary-removed")
def _(w, tmp_path):
    out = tmp_path / "student"
    leftover = tmp_path / ".student.k1ll3d.tmp"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half written")

    def post():
        assert not leftover.exists() and (out / "config.json").is_file()

    return Setup(["student", w.base, "--out", out, "--layers", "2"], None, code=0,
                 needles=("student written",), post=post)


@case("8-finished-rerun-nothing-to-do")
def _(w, tmp_path):
    before = _snapshot(w.finished)

    def post():
        assert _snapshot(w.finished) == before

    return Setup(w.finished_argv, None, code=0, needles=("nothing to do",), forbidden=("already exists",), post=post)


def _held(out: Path):
    @contextlib.contextmanager
    def hold():
        from polydistill.io import try_lock

        # try_lock, not output_lock: output_lock is re-entrant within one process by design
        with try_lock(out) as locked:
            assert locked
            yield
    return hold


@case("8-concurrent-finetune")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(_finetune_argv(w.base, w.data, out), out, needles=("Another polydistill process is writing",),
                 hold=_held(out))


@case("8-concurrent-student")
def _(w, tmp_path):
    out = tmp_path / "student"
    return Setup(["student", w.base, "--out", out, "--layers", "2"], out,
                 needles=("Another polydistill process is writing",), hold=_held(out))


# 9. messages --------------------------------------------------------------------------------------
def _corrupt_config(command):
    def make(w, tmp_path):
        out = tmp_path / "out"
        argv = {"finetune": ["finetune", w.corrupt_config, "--dataset", w.data, "--out", out, *FAST],
                "student": ["student", w.corrupt_config, "--out", out],
                "evaluate": ["evaluate", w.corrupt_config, "--dataset", w.data]}[command]
        return Setup(argv, out, needles=("config.json", "not valid JSON"), forbidden=("tokenizer",))
    return make


def _missing_model(command, spelling):
    def make(w, tmp_path):
        out = tmp_path / "out"
        model = "./nope" if spelling == "relative" else str(tmp_path / "nope")
        argv = {"finetune": ["finetune", model, "--dataset", w.data, "--out", out, *FAST],
                "student": ["student", model, "--out", out],
                "evaluate": ["evaluate", model, "--dataset", w.data]}[command]
        return Setup(argv, out, needles=("nope", "does not exist"), forbidden=("hub id '",), chdir=tmp_path)
    return make


for _command in ("finetune", "student", "evaluate"):
    case(f"9-corrupt-config-{_command}")(_corrupt_config(_command))
    for _spelling in ("relative", "absolute"):
        case(f"9-missing-model-{_spelling}-{_command}")(_missing_model(_command, _spelling))


@case("9-missing-dataset-folder")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.base, "--dataset", "./no-such-data", "--out", out, *FAST], out,
                 needles=("no-such-data", "does not exist"), chdir=tmp_path)


@case("9-empty-csvs")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.base, "--dataset", w.empty_csv, "--out", out, *FAST], out,
                 needles=("empty-csv",), forbidden=("for  is", "(e.g. )", "e.g. )"))


@case("9-empty-csvs-evaluate")
def _(w, tmp_path):
    return Setup(["evaluate", w.finished, "--dataset", w.empty_csv], None, needles=("empty-csv",),
                 forbidden=("for  is", "(e.g. )"))


# 10. hygiene --------------------------------------------------------------------------------------
def _modes(folder: Path) -> set[int]:
    return {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}


@case("10-modes-student")
def _(w, tmp_path):
    out = tmp_path / "student"

    def post():
        assert len(_modes(out)) == 1, {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in out.rglob("*")}

    return Setup(["student", w.base, "--out", out, "--layers", "2"], None, code=0, post=post)


@case("10-modes-finetune")
def _(w, tmp_path):
    out = tmp_path / "ft"

    def post():
        assert len(_modes(out)) == 1, {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in out.rglob("*")}

    return Setup(_finetune_argv(w.base, w.data, out), None, code=0, needles=("model saved",), post=post)


def _no_remote_code(out: Path, marker: Path) -> None:
    assert not marker.exists(), "the teacher's custom code ran"
    assert (out / "config.json").is_file()
    for name in ("config.json", "tokenizer_config.json"):
        if (out / name).is_file():
            assert "auto_map" not in json.loads((out / name).read_text(encoding="utf-8")), name
    assert not list(out.glob("*.py"))


@case("10-remote-code-student")
def _(w, tmp_path):
    out = tmp_path / "student"
    return Setup(["student", w.remote, "--out", out, "--layers", "2"], None, code=0,
                 post=lambda: _no_remote_code(out, w.marker))


@case("10-remote-code-finetune")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(_finetune_argv(w.remote, w.data, out), None, code=0, post=lambda: _no_remote_code(out, w.marker))


# the earlier refusals ------------------------------------------------------------------------------
@case("0-student-deeper-than-teacher")
def _(w, tmp_path):
    out = tmp_path / "student"
    return Setup(["student", w.base, "--out", out, "--layers", "5"], out, needles=("between 1 and 4 layers",))


@case("0-unknown-dataset")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.base, "--dataset", "nosuchdata", "--out", out, *FAST], out,
                 needles=("Unknown dataset 'nosuchdata'",))


@case("0-unknown-language")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.base, "--dataset", w.data, "--languages", "xx-XX", "--out", out, *FAST], out,
                 needles=("xx-XX",))


@case("0-corrupt-safetensors")
def _(w, tmp_path):
    out = tmp_path / "ft"
    return Setup(["finetune", w.corrupt_weights, "--dataset", w.data, "--out", out, *FAST], out,
                 needles=("may be corrupt",))


@case("0-output-exists")
def _(w, tmp_path):
    out = tmp_path / "student"
    out.mkdir()
    (out / "precious.txt").write_text("keep me\n", encoding="utf-8")
    return Setup(["student", w.base, "--out", out, "--layers", "2"], out, needles=("already exists", "--overwrite"))


@case("0-output-exists-finetune")
def _(w, tmp_path):
    out = tmp_path / "ft"
    out.mkdir()
    (out / "precious.txt").write_text("keep me\n", encoding="utf-8")
    return Setup(_finetune_argv(w.base, w.data, out), out, needles=("already exists", "--overwrite"))


# 11. output safety: an --out that is, holds or lies inside an input, a link, a device ------------------
# Every input kind × {equal, parent, inside, symlink}: the command refuses before anything is written or
# removed, and the folder holding the input (the case's ``out``) is byte-identical afterwards.
def _safety_inputs(w, runs: Path) -> SimpleNamespace:
    """Copies of the inputs in ``runs`` (a fresh folder per case: a refusal that failed deletes only them)."""
    i = SimpleNamespace()
    i.model = _copy_model(w.finished, runs / "teacher")
    i.student = _copy_model(w.base, runs / "student")
    i.data = shutil.copytree(w.data, runs / "data")
    i.corpus = runs / "corpus.txt"
    shutil.copy2(w.corpus, i.corpus)
    i.root = shutil.copytree(Path(__file__).parent / "fixtures" / "data", runs / "data-root")
    return i


_SAFETY_COMMANDS = {  # "<input kind>-<command>" -> the command line reading that input (--out comes last)
    "model-student": lambda i: ["student", i.model, "--layers", "1", "--overwrite"],
    "model-finetune": lambda i: ["finetune", i.model, "--dataset", i.data, "--overwrite", *FAST],
    "data-finetune": lambda i: ["finetune", i.student, "--dataset", i.data, "--overwrite", *FAST],
    "data-root-finetune": lambda i: ["finetune", i.student, "--dataset", "tsm", "-l", "english", "--data-root", i.root,
                                     "--overwrite", *FAST],
    "teacher-distill": lambda i: ["distill", "--teacher", i.model, "--dataset", i.data, "--layers", "1",
                                  "--allow-weak-teacher", "--overwrite", *FAST],
    "student-distill": lambda i: ["distill", "--teacher", i.model, "--student", i.student, "--dataset", i.data,
                                  "--allow-weak-teacher", "--overwrite", *FAST],
    "model-export": lambda i: ["export", i.model, "--overwrite"],
    "model-vocab": lambda i: ["vocab", "reduce", i.model, "--corpus", i.corpus, "--overwrite"],
    "corpus-lm-distill": lambda i: ["lm-distill", i.model, "--corpus", i.corpus, "--layers", "1", "--overwrite",
                                    "--max-steps", "1"],
    "model-compress": lambda i: ["compress", i.model, "--dataset", i.data, *_TINY_COMPRESS],
    "data-compress": lambda i: ["compress", i.model, "--dataset", i.data, *_TINY_COMPRESS],
    "model-evaluate": lambda i: ["evaluate", i.model, "--dataset", i.data],
    "model-bench": lambda i: ["bench", i.model, "--repeats", "1", "--lengths", "8", "--device", "cpu"],
    "model-lm-distill": lambda i: ["lm-distill", i.model, "--corpus", i.corpus, "--layers", "1", "--overwrite",
                                   "--max-steps", "1"],
    "corpus-vocab": lambda i: ["vocab", "reduce", i.student, "--corpus", i.corpus, "--overwrite"],
    "data-distill": lambda i: ["distill", "--teacher", i.model, "--dataset", i.data, "--layers", "1",
                               "--allow-weak-teacher", "--overwrite", *FAST],
    "data-evaluate": lambda i: ["evaluate", i.model, "--dataset", i.data],
}
_TINY_COMPRESS = ["--size", "tiny", "--bench-lengths", "16", "--allow-weak-teacher", "--overwrite"]
_SAFETY_TARGET = {"model": "model", "teacher": "model", "student": "student", "data": "data",
                  "data-root": "root", "corpus": "corpus"}


def _safety(command: str, relation: str):
    def make(w, tmp_path):
        runs = tmp_path / "runs"
        runs.mkdir()
        i = _safety_inputs(w, runs)
        target = getattr(i, _SAFETY_TARGET[command.rsplit("-", 1)[0].removesuffix("-lm")])
        out = {"equal": target, "parent": runs, "inside": target / "sub", "symlink": tmp_path / "link"}[relation]
        if command.endswith(("evaluate", "bench")) and relation == "inside":
            out = out / "report.json"  # these commands write one file
        if relation == "symlink":
            out.symlink_to(target)
        argv = [*_SAFETY_COMMANDS[command](i), "--out", out]
        needle = {"equal": "is an input", "parent": "holds an input", "inside": "lies inside",
                  "symlink": "symbolic link"}[relation]

        def post():
            assert (relation != "symlink") or out.is_symlink()

        return Setup(argv, runs, needles=(needle,), post=post)
    return make


for _command in _SAFETY_COMMANDS:
    for _relation in ("equal", "parent", "inside", "symlink"):
        if _command.startswith("corpus") and _relation == "inside":
            continue  # a file has no inside (the parent case covers it)
        case(f"11-out-{_relation}-{_command}")(_safety(_command, _relation))


# Sources spelled LANG=FILE or DATASET:LANGUAGES are inputs too (--unlabelled-data of distill and compress, --corpus
# of vocab reduce; "unlabelled data" is an input kind of issue #35). Their file or folder lies in ``runs/extra``, an
# earlier polydistill output (its run.json) that --overwrite would replace, deleting the source with it.
def _source_inputs(w, tmp_path: Path) -> SimpleNamespace:
    i = SimpleNamespace(model=_copy_model(w.finished, tmp_path / "teacher"), data=shutil.copytree(w.data,
                                                                                                   tmp_path / "data"))
    i.extra = tmp_path / "runs" / "extra"
    i.extra.mkdir(parents=True)
    shutil.copy2(w.finished / "run.json", i.extra / "run.json")
    i.file = i.extra / "unlabelled.txt"
    shutil.copy2(w.corpus, i.file)
    i.folder = shutil.copytree(w.data, i.extra / "more-data")
    return i


_SOURCE_COMMANDS = {  # "<source kind>-<command>" -> (the command line reading the source, the source)
    "unlabelled-file-distill": lambda i: (["distill", "--teacher", i.model, "--dataset", i.data, "--layers", "1",
                                           "--allow-weak-teacher", "--unlabelled-data", f"en={i.file}", "--overwrite",
                                           *FAST], i.file),
    "unlabelled-dataset-distill": lambda i: (["distill", "--teacher", i.model, "--dataset", i.data, "--layers", "1",
                                              "--allow-weak-teacher", "--unlabelled-data", f"{i.folder}:en",
                                              "--overwrite", *FAST], i.folder),
    "unlabelled-file-compress": lambda i: (["compress", i.model, "--dataset", i.data, *_TINY_COMPRESS,
                                            "--unlabelled-data", f"en={i.file}"], i.file),
    "corpus-file-vocab": lambda i: (["vocab", "reduce", i.model, "--corpus", f"en={i.file}", "--overwrite"], i.file),
}


def _source_safety(command: str, relation: str):
    def make(w, tmp_path):
        i = _source_inputs(w, tmp_path)
        argv, target = _SOURCE_COMMANDS[command](i)
        out = {"equal": target, "parent": i.extra, "inside": target / "sub", "symlink": tmp_path / "link"}[relation]
        if relation == "symlink":
            out.symlink_to(target)
        needle = {"equal": "is an input", "parent": "holds an input", "inside": "lies inside",
                  "symlink": "symbolic link"}[relation]
        return Setup([*argv, "--out", out], tmp_path / "runs", needles=(needle,))
    return make


for _command in _SOURCE_COMMANDS:
    for _relation in ("equal", "parent", "inside", "symlink"):
        if "-file-" in _command and _relation == "inside":
            continue  # a file has no inside (the parent case covers it)
        case(f"11-out-{_relation}-{_command}")(_source_safety(_command, _relation))


@case("11-evaluate-out-model-config-json")
def _(w, tmp_path):
    model = _copy_model(w.finished, tmp_path / "model")  # the example: it overwrote the model's config
    return Setup(["evaluate", model, "--dataset", w.data, "--out", model / "config.json"], model,
                 needles=("lies inside an input",))


@case("11-evaluate-out-another-models-config-json")
def _(w, tmp_path):
    other = _copy_model(w.base, tmp_path / "other")
    return Setup(["evaluate", w.finished, "--dataset", w.data, "--out", other / "config.json"], other,
                 needles=("inside the model directory",))


@case("11-out-symlink-to-another-disk")
def _(w, tmp_path):
    bigger = tmp_path / "bigger-disk"  # the link's target is no input: it was replaced by a real directory
    bigger.mkdir()
    (tmp_path / "runs").symlink_to(bigger)

    def post():
        assert (tmp_path / "runs").is_symlink() and not list(bigger.iterdir())

    return Setup(["student", w.base, "--layers", "1", "--out", tmp_path / "runs", "--overwrite"], bigger,
                 needles=("symbolic link",), post=post)


@case("11-out-device-node")
def _(w, tmp_path):
    return Setup(["student", w.base, "--layers", "1", "--out", "/dev/null", "--overwrite"], None,
                 needles=("not an ordinary file or folder",), post=lambda: Path("/dev/null").is_char_device())


@case("11-out-fifo")
def _(w, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return Setup(["evaluate", w.finished, "--dataset", w.data, "--out", fifo], None,
                 needles=("not an ordinary file or folder",), post=lambda: stat.S_ISFIFO(fifo.stat().st_mode))


@case("11-out-under-dangling-symlink")
def _(w, tmp_path):
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    return Setup(["student", w.base, "--layers", "1", "--out", tmp_path / "gone" / "student"], None,
                 needles=("symbolic link to a path that does not exist",))


@case("11-out-empty")
def _(w, tmp_path):
    return Setup(["student", w.base, "--layers", "1", "--out", "", "--overwrite"], None,
                 needles=("current directory",), chdir=tmp_path)


@case("11-out-inside-a-model")
def _(w, tmp_path):
    model = _copy_model(w.base, tmp_path / "other-model")
    return Setup(_finetune_argv(w.base, w.data, model / "ft"), model, needles=("inside the model directory",))


@case("11-overwrite-a-foreign-folder")
def _(w, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8 not a model")
    return Setup(["student", w.base, "--layers", "1", "--out", out, "--overwrite"], out,
                 needles=("not an output of polydistill",))


@case("11-small-report-on-a-nearly-full-disk")
def _(w, tmp_path):
    out = tmp_path / "report.json"
    usage = shutil.disk_usage(tmp_path)
    small = mock.patch("shutil.disk_usage", return_value=usage._replace(free=int(1.9 * 2**20)))
    return Setup(["evaluate", w.finished, "--dataset", w.data, "--out", out], None, code=0,
                 hold=lambda: small, post=lambda: json.loads(out.read_text(encoding="utf-8")))



# 12. flags that would be ignored, out-of-range seeds -------------------------------------------------
@case("12-student-with-layers")
def _(w, tmp_path):
    out = tmp_path / "kd"
    return Setup(["distill", "--teacher", w.finished, "--student", w.base, "--layers", "3", "--dataset", w.data,
                  "--out", out, *FAST], out, needles=("--layers", "ignored with --student"))


@case("12-unlabelled-max-without-data")
def _(w, tmp_path):
    out = tmp_path / "kd"
    return Setup(["distill", "--teacher", w.finished, "--dataset", w.data, "--unlabelled-max", "5", "--out", out,
                  *FAST], out, needles=("--unlabelled-max", "--unlabelled-data"))


for _flag in ("-1", "99999999999"):
    case(f"12-seed-{_flag}-student")(lambda w, tmp_path, _f=_flag: Setup(
        ["student", w.base, "--layers", "1", "--seed", _f, "--out", tmp_path / "s"], tmp_path / "s",
        needles=("--seed",)))
    case(f"12-seed-{_flag}-finetune")(lambda w, tmp_path, _f=_flag: Setup(
        [*_finetune_argv(w.base, w.data, tmp_path / "ft"), "--seed", _f], tmp_path / "ft", needles=("--seed",)))


@case("12-compress-language-without-test-rows")
def _(w, tmp_path):
    data = shutil.copytree(w.data, tmp_path / "data")
    with (data / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    languages = sorted({row[2] for row in rows[1:]})
    with (data / "test.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *[row for row in rows[1:] if row[2] != languages[-1]]])
    out = tmp_path / "cz"
    return Setup(["compress", w.finished, "--dataset", data, "-l", ",".join(languages), *_TINY_COMPRESS[:-1],
                  "--out", out], out,
                 needles=(languages[-1], "no test examples", "retention"))


@case("12-compress-unseen-language-without-test-rows")
def _(w, tmp_path):
    data = shutil.copytree(w.data, tmp_path / "data")  # 'it' has train and validation rows, no test rows
    for split in ("train", "validation"):
        with (data / f"{split}.csv").open("a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows([["ciao, suona del jazz", "music", "it"], ["piove oggi", "weather", "it"]])
    with (w.data / "test.csv").open(encoding="utf-8", newline="") as handle:
        languages = sorted({row[2] for row in list(csv.reader(handle))[1:]})
    out = tmp_path / "cz"
    return Setup(["compress", w.finished, "--dataset", data, "-l", ",".join(languages), "--unseen-languages", "it",
                  *_TINY_COMPRESS[:-1], "--out", out], out, needles=("it has no test examples", "retention"))


def test_build_student_refuses_a_fractional_depth(world, tmp_path):
    from polydistill.errors import PolydistillError
    from polydistill.student.build import build_student

    with pytest.raises(PolydistillError, match="layers must be a whole number, got 2.7"):
        build_student(str(world.base), tmp_path / "s", layers=2.7)
    assert not (tmp_path / "s").exists()


# 13. finished runs whose files changed afterwards ------------------------------------------------------
@case("13-finished-run-weights-truncated")
def _(w, tmp_path):
    out = _copy_model(w.finished, tmp_path / "finished")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return Setup([*w.finished_argv[:5], out, *w.finished_argv[6:]], out,
                 needles=("model.safetensors", "changed since it finished", "--overwrite"))


for _name, _edit in [("a-list", lambda record: [record]), ("fingerprint-a-string", lambda r: {**r, "fingerprint": "x"}),
                     ("result-a-number", lambda r: {**r, "result": 3})]:
    def _edited(w, tmp_path, _edit=_edit):
        out = _copy_model(w.finished, tmp_path / "finished")
        record = json.loads((out / "run.json").read_text(encoding="utf-8"))
        (out / "run.json").write_text(json.dumps(_edit(record)), encoding="utf-8")
        return Setup([*w.finished_argv[:5], out, *w.finished_argv[6:]], out, needles=("run.json", "edited by hand"))

    case(f"13-run-json-{_name}")(_edited)


for _name, _edit, _needle in [("without-fingerprint", lambda r: {k: v for k, v in r.items() if k != "fingerprint"},
                               "fingerprint"),
                              ("best-dev-f1-a-string", lambda r: {**r, "result": {**r["result"], "best_dev_f1": "high"}},
                               "best_dev_f1")]:
    def _edited_rerun(w, tmp_path, _edit=_edit, _needle=_needle):
        out = _copy_model(w.finished, tmp_path / "finished")
        _edit_json(out / "run.json", _edit)
        return Setup([*w.finished_argv[:5], out, *w.finished_argv[6:]], out,
                     needles=("run.json", _needle, "edited by hand"))

    case(f"13-run-json-{_name}-finetune")(_edited_rerun)


# records of another shape (issue #35 item 4): every record read back names its file and field
def _edit_json(path: Path, edit) -> None:
    path.write_text(json.dumps(edit(json.loads(path.read_text(encoding="utf-8")))), encoding="utf-8")


def _finished_compress(w) -> Path:
    """A finished tiny compress run of the catalogue's teacher (built once per module; cases copy it)."""
    run = w.root / "compressed"
    if not (run / "report.json").is_file():
        assert _run_quietly([str(a) for a in ["compress", w.finished, "--dataset", w.data, *_TINY_COMPRESS[:-1],
                                              "--out", run]]) == 0
    return run


def _compress_rerun(w, run: Path) -> list:
    return ["compress", w.finished, "--dataset", w.data, *_TINY_COMPRESS[:-1], "--out", run]


def _student_of(w, out: Path) -> Path:
    assert _run_quietly(["student", str(w.base), "--layers", "2", "--out", str(out)]) == 0
    return out


for _name, _edit, _needle in [("a-list", lambda r: [r], "the top level"),
                              ("teacher-layers-a-string", lambda r: {**r, "teacher_layers": "0,3"}, "teacher_layers")]:
    def _provenance(w, tmp_path, _edit=_edit, _needle=_needle):
        student = _student_of(w, tmp_path / "student")
        _edit_json(student / "polydistill.json", _edit)
        out = tmp_path / "kd"
        return Setup(["distill", "--teacher", w.finished, "--student", student, "--dataset", w.data, "--out", out,
                      *FAST, "--allow-weak-teacher"], tmp_path,
                     needles=("polydistill.json", _needle, "edited by hand"))

    case(f"13-polydistill-json-{_name}")(_provenance)


@case("13-run-json-data-a-list-evaluate")
def _(w, tmp_path):
    model = _copy_model(w.finished, tmp_path / "model")
    _edit_json(model / "run.json", lambda r: {**r, "data": ["en"]})
    return Setup(["evaluate", model, "--dataset", w.data, "--out", tmp_path / "report.json"], tmp_path,
                 needles=("run.json", "data", "edited by hand"))


@case("13-run-json-best-dev-f1-a-string-distill")
def _(w, tmp_path):
    teacher = _copy_model(w.finished, tmp_path / "teacher")
    _edit_json(teacher / "run.json", lambda r: {**r, "result": {**r["result"], "best_dev_f1": "high"}})
    return Setup(["distill", "--teacher", teacher, "--dataset", w.data, "--layers", "2", "--out", tmp_path / "kd",
                  *FAST], tmp_path, needles=("run.json", "result.best_dev_f1", "edited by hand"))


for _name, _file, _edit, _needle in [
    ("compress-json-a-list", "compress.json", lambda r: [r], "the top level"),
    ("compress-json-no-fingerprint", "compress.json", lambda r: {"command": r["command"]}, "fingerprint"),
    ("done-marker-seconds-a-string", "stages/4-kd/done.json", lambda r: {**r, "seconds": "fast"}, "seconds"),
    ("evaluation-examples-a-string", "stages/6-evaluate/kd.json", lambda r: {**r, "examples": "x"}, "examples"),
    ("bench-models-a-dict", "stages/7-bench/bench.json", lambda r: {**r, "models": {}}, "models"),
]:
    def _compress_record(w, tmp_path, _file=_file, _edit=_edit, _needle=_needle):
        run = shutil.copytree(_finished_compress(w), tmp_path / "cz")
        _edit_json(run / _file, _edit)
        return Setup(_compress_rerun(w, run), run, needles=(_file.rsplit("/", 1)[-1], _needle, "edited by hand"))

    case(f"13-{_name}")(_compress_record)


@case("13-compress-seeds-report-json-without-settings")
def _(w, tmp_path):
    runs = [shutil.copytree(_finished_compress(w), tmp_path / f"cz{i}") for i in (1, 2)]
    _edit_json(runs[1] / "report.json", lambda r: {k: v for k, v in r.items() if k != "settings"})
    return Setup(["compress-seeds", *runs], tmp_path, needles=("report.json", "settings", "edited by hand"))


@case("13-compress-stage-model-deleted")
def _(w, tmp_path):
    run = shutil.copytree(_finished_compress(w), tmp_path / "cz")
    shutil.rmtree(run / "stages" / "4-kd" / "model")
    return Setup(_compress_rerun(w, run), run, needles=("kd stage", "4-kd/model", "deleted", "--overwrite"))


@case("13-compress-evaluation-deleted-is-re-made")
def _(w, tmp_path):
    run = shutil.copytree(_finished_compress(w), tmp_path / "cz")
    evaluation = run / "stages" / "6-evaluate" / "kd.json"
    evaluation.unlink()

    def post():
        assert evaluation.is_file() and (run / "report.json").is_file()

    return Setup(_compress_rerun(w, run), None, code=0, needles=("compress finished",), post=post)


# a good result is replaced only by a finished one (issue #35 item 2): a failed --overwrite re-run of compress leaves
# the earlier run byte-identical (before: model/, model-int8/ and report.md were deleted first)
def _no_set_aside(run: Path):
    def post():  # the earlier run is back in place, nothing set aside beside it
        assert not run.with_name(f".{run.name}.previous").exists()
        assert (run / "report.json").is_file() and (run / "model").is_dir()
    return post


@case("13-compress-overwrite-with-a-bad-flag-keeps-the-earlier-run")
def _(w, tmp_path):
    run = shutil.copytree(_finished_compress(w), tmp_path / "cz")
    return Setup([*_compress_rerun(w, run), "--overwrite", "--kd-term", "bogus=1"], run,
                 needles=("unknown KD term 'bogus'",), forbidden=("pydantic.dev",), post=_no_set_aside(run))


@case("13-compress-overwrite-failing-late-keeps-the-earlier-run")
def _(w, tmp_path):
    from polydistill.errors import PolydistillError

    run = shutil.copytree(_finished_compress(w), tmp_path / "cz")
    failing = mock.patch("polydistill.vocab.reduce.vocab_reduce",
                         side_effect=PolydistillError("The vocabulary stage failed (a late failure, on purpose)."))
    return Setup([*_compress_rerun(w, run), "--overwrite"], run, needles=("failed (a late failure, on purpose)",),
                 hold=lambda: failing, post=_no_set_aside(run))


# flags compress checked only when their stage came (issue #35 item 2): refused before the first stage
for _name, _flags, _needles in [("kd-term-unknown", ["--kd-term", "bogus=1"], ("--kd-term", "unknown KD term 'bogus'")),
                                ("kd-term-negative", ["--kd-term", "att=-1"], ("--kd-term", "att weight")),
                                ("layer-map-unknown", ["--layer-map", "bogus"], ("Unknown layer map 'bogus'",))]:
    case(f"12-compress-{_name}")(lambda w, tmp_path, _f=_flags, _n=_needles: Setup(
        ["compress", w.finished, "--dataset", w.data, *_TINY_COMPRESS[:-1], *_f, "--out", tmp_path / "cz"],
        tmp_path / "cz", needles=_n, forbidden=("pydantic.dev",)))


def _compress_argv(w, out: Path, *flags: str) -> list:
    """compress of the catalogue's teacher with its own size flags (no --size: the tiny preset would clash)."""
    return ["compress", w.finished, "--dataset", w.data, "--bench-lengths", "16", "--allow-weak-teacher", *flags,
            "--out", out]


@case("12-compress-layer-map-list-with-target-speedup")
def _(w, tmp_path):
    out = tmp_path / "cz"  # refused before the plan measured a candidate (the depth stage refused it, after three)
    return Setup(_compress_argv(w, out, "--target-speedup", "2", "--layer-map", "0,2"), out,
                 needles=("--layer-map 0,2", "--target-speedup", "add --layers 2"))


@case("12-compress-kd-terms-all-off-at-full-width")
def _(w, tmp_path):
    out = tmp_path / "cz"  # full width: rel is off by default, so every KD term is off (the KD stage refused it)
    terms = [arg for term in ("att", "hid", "emb", "pred", "ce") for arg in ("--kd-term", f"{term}=0")]
    return Setup(_compress_argv(w, out, "--size", "base", *terms), out,
                 needles=("--kd-term", "every loss weight is 0"))


@case("12-compress-runtime-package-missing")
def _(w, tmp_path):
    out = tmp_path / "cz"  # the int8 stage (the 6th) refused it, after KD
    return Setup(_compress_argv(w, out, "--size", "tiny", "--runtime", "openvino"), out,
                 needles=("openvino package",),
                 hold=lambda: mock.patch("polydistill.export.runtimes.installed", return_value=False))


# a grid's results store hand-edited (issue #35 item 4): grid report / grid run name the result file and its field
def _grid_result(run_id: str) -> dict:
    spec = {"kind": "teacher", "teacher": "tiny", "dataset": "data", "seed": 0, "train_languages": "all"}
    return {"run_id": run_id, "spec": spec, "metrics": {"groups": {"all": {"f1": 0.5, "support": 10}}}}


for _name, _edit, _needle in [("a-list", lambda r: [r], "the top level"),
                              ("f1-a-string", lambda r: {**r, "metrics": {"groups": {"all": {"f1": "high"}}}},
                               "metrics.groups.all.f1"),
                              ("without-spec", lambda r: {k: v for k, v in r.items() if k != "spec"}, "spec")]:
    def _edited_result(w, tmp_path, _edit=_edit, _needle=_needle):
        store = tmp_path / "store"
        (store / "results").mkdir(parents=True)
        (store / "results" / "teacher-1.json").write_text(json.dumps(_edit(_grid_result("teacher-1"))),
                                                          encoding="utf-8")
        return Setup(["grid", "report", store, "--out", tmp_path / "report"], store,
                     needles=("teacher-1.json", _needle, "edited by hand"))

    case(f"13-grid-result-{_name}")(_edited_result)


@case("13-grid-result-edited-grid-run")
def _(w, tmp_path):
    from polydistill.experiments.grid import expand
    from polydistill.experiments.schema import load_config

    (spec,) = expand(load_config(w.grid_yaml))  # the grid's one cell, found done: only the report reads it
    results = tmp_path / "runs" / "results"
    results.mkdir(parents=True)
    (results / f"{spec.run_id}.json").write_text(json.dumps({**_grid_result(spec.run_id), "wall_seconds": "long"}),
                                                 encoding="utf-8")
    return Setup(["grid", "run", w.grid_yaml, "--work-dir", tmp_path / "runs"], results,
                 needles=(f"{spec.run_id}.json", "wall_seconds", "edited by hand"))


def test_library_entry_points_refuse_wrong_types_in_one_sentence(world, tmp_path):
    from polydistill.distill.finetune import finetune
    from polydistill.distill.kd import distill
    from polydistill.distill.settings import TrainSettings
    from polydistill.errors import PolydistillError
    from polydistill.evaluate import evaluate_model
    from polydistill.student.build import build_student

    settings = TrainSettings(output_dir=tmp_path / "out", max_steps=1)
    data = tiny_task("sequence", n_train=8, n_dev=8)
    for call, message in [
        (lambda: distill(str(world.finished), None, "tsm", settings), "data must be a TaskData"),
        (lambda: distill(str(world.finished), None, data, {"output_dir": "x"}), "settings must be a TrainSettings"),
        (lambda: distill(str(world.finished), None, data, settings, kd={"att": 1}), "kd must be a KDSettings"),
        (lambda: finetune(str(world.base), "tsm", settings), "data must be a TaskData"),
        (lambda: evaluate_model(str(world.finished), None, "tsm"), "data must be a TaskData"),
        (lambda: evaluate_model(str(world.finished), None, data, batch_size="8"), "batch_size must be a whole number"),
        (lambda: build_student(str(world.base), None, layers=2, seed="x"), "seed must be a whole number"),
        (lambda: build_student(str(world.base), None, layers=2, layer_map=5), "layer_map must be"),
        (lambda: build_student(str(world.base), 5, layers=2), "out must be a folder path"),
    ]:
        with pytest.raises(PolydistillError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


# 14. weights and inputs the model cannot take (issue #35 item 5) ---------------------------------------
def _poisoned(src: Path, dst: Path, pick: str, value: float = float("nan")) -> Path:
    """A copy of the model ``src`` whose first tensor with ``pick`` in its name holds one ``value``."""
    from safetensors.torch import load_file, save_file

    model = _copy_model(src, dst)
    weights = load_file(model / "model.safetensors")
    name = next(k for k in sorted(weights) if pick in k)
    weights[name].view(-1)[0] = value
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    return model


@case("14-nan-weights-evaluate")
def _(w, tmp_path):
    model = _poisoned(w.finished, tmp_path / "nan", "classifier")
    out = tmp_path / "report.json"
    return Setup(["evaluate", model, "--dataset", w.data, "--out", out], out,
                 needles=(str(model), "NaN or infinite", "classifier"))


@case("14-inf-weights-export")
def _(w, tmp_path):
    model = _poisoned(w.finished, tmp_path / "inf", "query.weight", float("inf"))
    out = tmp_path / "exported"
    return Setup(["export", model, "--out", out], out, needles=(str(model), "NaN or infinite", "query.weight"))


@case("14-nan-weights-bench")
def _(w, tmp_path):
    model = _poisoned(w.base, tmp_path / "nan", "query.weight")
    out = tmp_path / "bench.json"
    return Setup(["bench", model, "--out", out, "--repeats", "1", "--warmup", "0", "--lengths", "8", "--batch-size", "2",
                  "--device", "cpu"], out, needles=(str(model), "NaN or infinite"))


@case("14-nan-weights-distill-teacher")
def _(w, tmp_path):
    teacher = _poisoned(w.finished, tmp_path / "nan", "classifier", float("-inf"))
    out = tmp_path / "kd"
    return Setup(["distill", "--teacher", teacher, "--dataset", w.data, "--layers", "2", "--out", out, *FAST], out,
                 needles=(str(teacher), "NaN or infinite", "classifier"))


@case("14-nan-weights-distill-student")
def _(w, tmp_path):
    student = _poisoned(w.base, tmp_path / "nan", "query.weight")
    out = tmp_path / "kd"
    return Setup(["distill", "--teacher", w.finished, "--student", student, "--dataset", w.data, "--out", out, *FAST,
                  "--allow-weak-teacher"], out, needles=(str(student), "NaN or infinite"))


def _long_line_data(w, folder: Path, words: int = 5000) -> Path:
    """The catalogue's data with one line of ~2 × ``words`` tokens in every split (the models have 64 positions)."""
    shutil.copytree(w.data, folder)
    for split in ("train", "validation", "test"):
        with (folder / f"{split}.csv").open("r+", encoding="utf-8", newline="") as handle:
            label = list(csv.reader(handle))[-1][1]
            csv.writer(handle).writerow([" ".join(["hello world"] * words), label, "en"])
    return folder


def _recorded_max_length(out: Path) -> int:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))["settings"]["max_length"]


@case("14-max-length-over-positions-distill")
def _(w, tmp_path):
    out = tmp_path / "kd"  # the default --max-length 128 > the teacher's and the student's 64 positions

    def post():
        assert _recorded_max_length(out) == 64

    return Setup(["distill", "--teacher", w.finished, "--dataset", _long_line_data(w, tmp_path / "long"), "--layers",
                  "2", "--out", out, *FAST, "--allow-weak-teacher"], None, code=0, forbidden=("Traceback",), post=post)


def test_max_length_over_positions_is_capped_with_a_note(world, tmp_path, capsys):
    out = tmp_path / "ft"
    code, _, err = run_cli(_finetune_argv(world.base, _long_line_data(world, tmp_path / "long"), out), capsys)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    notes = [line for line in err.splitlines() if line.startswith("note: max_length 128")]
    assert notes == ["note: max_length 128 exceeds the model's 64 positions; using 64."], err[-3000:]
    assert _recorded_max_length(out) == 64
    code, _, err = run_cli(["evaluate", out, "--dataset", tmp_path / "long", "--out", tmp_path / "r.json"], capsys)
    assert code == 0 and "Traceback" not in err, err[-3000:]


@case("14-foreign-tokenizer-evaluate")
def _(w, tmp_path):
    from transformers import AutoTokenizer

    model = _copy_model(w.finished, tmp_path / "foreign")
    tokenizer = AutoTokenizer.from_pretrained(str(model))  # a bigger vocabulary than the 300 embedding rows
    tokenizer.add_tokens([f"foreign{i}" for i in range(1000)])
    tokenizer.save_pretrained(model)
    out = tmp_path / "report.json"
    return Setup(["evaluate", model, "--dataset", w.data, "--out", out], out,
                 needles=(str(model), "word-embedding rows", "another model's tokenizer"))


@case("14-foreign-tokenizer-smaller-evaluate")
def _(w, tmp_path):
    from factories import make_wordpiece_tokenizer

    model = _copy_model(w.finished, tmp_path / "foreign")
    for path in model.glob("tokenizer*"):
        path.unlink()
    make_wordpiece_tokenizer(vocab_size=60).save_pretrained(model)  # ~60 ids for the model's ~220 rows
    out = tmp_path / "report.json"
    return Setup(["evaluate", model, "--dataset", w.data, "--out", out], out,
                 needles=(str(model), "word-embedding rows", "another model's tokenizer"))


for _name, _text in [("whitespace", "   \n\t\t\n\u00a0\u3000\n\n \n"),
                     ("invisible", "\u200b\n\ufeff\u200b\n\u200b \u200b\n\u2060\n")]:
    def _no_text(w, tmp_path, _text=_text):
        corpus = tmp_path / "corpus.txt"
        corpus.write_text(_text, encoding="utf-8")
        out = tmp_path / "lm"
        return Setup(["lm-distill", w.base, "--corpus", corpus, "--out", out, "--layers", "2", "--max-steps", "1",
                      "--eval-steps", "1", "--fit-teacher-head-steps", "1", "--batch-size", "4"], out,
                     needles=(str(corpus),), post=lambda: None if not (tmp_path / "lm.work").exists() else pytest.fail(
                         "lm-distill left a work dir"))

    case(f"14-lm-distill-{_name}-corpus")(_no_text)


# ---------------------------------------------------------------------------------------- the test

XFAIL: dict[str, str] = {}  # case name -> reason (a known failure whose fix lies elsewhere; strict)


def _params():
    for name, (fn, marks) in CASES.items():
        marks = list(marks)
        if name in XFAIL:
            marks.append(pytest.mark.xfail(reason=XFAIL[name], strict=True))
        yield pytest.param(fn, id=name, marks=marks)


_OUTPUT_FLAGS = {"--out", "--work-dir", "--report", "--json"}


def _input_snapshots(argv: list) -> dict[str, dict[str, bytes] | None]:
    """Every existing file or folder the command line names (``LANG=FILE`` and ``FOLDER:LANGUAGES`` spellings
    included) but its output: "every input byte-identical afterwards" of issue #35."""
    outputs = {i + 1 for i, arg in enumerate(argv) if str(arg) in _OUTPUT_FLAGS}
    found = {}
    for i, arg in enumerate(argv):
        text = str(arg)
        for part in {text, text.partition("=")[2], text.partition(":")[0]} - {""}:
            path = Path(part)
            if i not in outputs and path.is_absolute() and not path.is_symlink() and (path.is_file() or path.is_dir()):
                found[part] = _snapshot(path)
    return found


@pytest.mark.parametrize("make", list(_params()))
def test_catalogue(make, world, tmp_path, capsys, monkeypatch):
    setup = make(world, tmp_path)
    if setup.chdir is not None:
        monkeypatch.chdir(setup.chdir)
    before = _snapshot(setup.out)
    inputs = _input_snapshots(setup.argv)
    with setup.hold() if setup.hold else contextlib.nullcontext():
        code, out, err = run_cli(setup.argv, capsys)
    for path, content in inputs.items():
        assert _snapshot(Path(path)) == content, f"the input {path} changed"
    assert code == setup.code, f"exit {code}\nstdout: {out[-2000:]}\nstderr: {err[-3000:]}"
    if setup.code == 2:
        sentence = check_one_sentence(err)
        print(sentence)  # shown with the failure report
        for needle in setup.needles:
            assert needle in sentence, sentence
    else:
        for needle in setup.needles:
            assert needle in out, out
    for word in setup.forbidden:
        assert word not in err, err
    if setup.out is not None:
        assert _snapshot(setup.out) == before, f"{setup.out} changed"
        assert not _temporaries(setup.out), _temporaries(setup.out)
    if setup.post is not None:
        setup.post()


def test_catalogue_covers_every_class():
    classes = {name.split("-")[0] for name in CASES}
    assert classes == {str(i) for i in range(15)}


def test_ctrl_c_is_exit_130_with_one_line(world, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("polydistill.data.load_task_data", interrupted)
    code, _, err = run_cli(["data", "show", world.data], capsys)
    assert code == 130 and "interrupted" in err and "Traceback" not in err


def test_an_oserror_that_is_a_bug_keeps_its_traceback(world, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/somewhere/internal")

    monkeypatch.setattr("polydistill.data.load_task_data", broken)
    with pytest.raises(FileNotFoundError):
        main(["data", "show", str(world.data)])


def test_library_callers_get_the_output_rule_for_compound_inputs(tmp_path):
    """A library call (compress(...) passes its settings' ``--unlabelled-data`` as given) names inputs in the
    compound spellings ``LANG=FILE`` and ``FOLDER:LANGUAGES``: the preflight resolves them as the CLI does, so an
    output that holds the named file or folder is refused and nothing is removed."""
    from polydistill.errors import PolydistillError
    from polydistill.io import check_output_path

    parent = tmp_path / "earlier"
    corpus = parent / "sw.txt"
    folder = parent / "data"
    parent.mkdir()
    corpus.write_text("habari\n", encoding="utf-8")
    folder.mkdir()
    for spelled in (f"sw={corpus}", f"{folder}:sw-KE"):
        with pytest.raises(PolydistillError, match="holds|inside|is"):
            check_output_path(parent, inputs=(spelled,))
    assert corpus.read_text(encoding="utf-8") == "habari\n" and folder.is_dir()
    check_output_path(tmp_path / "elsewhere", inputs=(f"sw={corpus}",))  # an unrelated output is fine

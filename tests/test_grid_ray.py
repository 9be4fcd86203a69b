"""``grid run --backend ray`` (issue #34): the cells of a tiny grid (tiny random BERT teacher, invented tsm
data, 2 seeds, 4 student cells) as tasks of a local 2-worker Ray cluster give the sequential run's tables byte
for byte; a worker SIGKILLed mid-cell is replaced, the cell retried and the tables are still identical; Ctrl-C
stops the grid and a re-run resumes. Without Ray, ``--backend ray`` is one sentence saying how to install it."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from polydistill.cli import main
from polydistill.experiments.grid import expand
from polydistill.experiments.report import write_report
from polydistill.experiments.runner import run_grid
from polydistill.experiments.schema import parse_config
from test_experiments_resume import grid_dict

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'polydistill[ray]')")
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the Ray workers through /proc")
# report files compared byte for byte (table.md and teachers.md too, without their wall times: the numbers
# that measure the machine, not the cells)
TABLES = ("csv", "latex", "claims_csv", "claims_json", "per_language_csv", "teachers", "markdown")
CELL_TITLE = "ray::polydistill-cell"  # the process title of a Ray worker while it runs a cell


def ray_grid_dict(tmp_path: Path) -> dict:
    config = grid_dict(tmp_path)
    config.update(name="tiny-ray", seeds=[0, 1], copy_without_finetune=False,
                  students={"inits": ["from-teacher"], "kd": [False, True], "layers": [2]})
    config["student_training"] = {**config["student_training"], "epochs": 3}
    return config


def tables(work: Path) -> dict[str, str]:
    written = write_report(work, work / "report-check", resamples=200)
    out = {}
    for key in TABLES:
        text = Path(written[key]).read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if not line.startswith("Wall time:")]
        if key == "teachers":  # its last column is the teacher's wall time
            lines = [line.rstrip(" |").rsplit("|", 1)[0] if line.startswith("|") else line for line in lines]
        out[key] = "\n".join(lines)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grid-ray")
    config = ray_grid_dict(tmp)
    specs = expand(parse_config(config))
    assert len(specs) == 5 and sum(s.kind == "student" for s in specs) == 4 and {s.seed for s in specs} == {0, 1}
    path = tmp / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    reference = tmp / "sequential"
    run_grid(parse_config(config), reference)
    return {"tmp": tmp, "path": path, "reference": reference, "tables": tables(reference)}


def grid_cli(path: Path, work: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "polydistill", "grid", "run", str(path), "--work-dir", str(work), "--no-report",
         "--backend", "ray", "--workers", "2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )


def descendants(pid: int) -> dict[int, str]:
    """Processes under ``pid`` (the Ray cluster a driver started) → their command line (a Ray worker's title)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            todo.append(child)
    return found


def open_folders(pid: int) -> set[str]:
    """Every folder above a file ``pid`` has open."""
    folders: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            folders.update(str(parent) for parent in Path(os.readlink(fd)).parents)
        except OSError:
            continue
    return folders


def wait_for(proc: subprocess.Popen, condition, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"the grid ended before the point was reached: {proc.communicate()[1][-3000:]}"
        if (value := condition()):
            return value
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the point was never reached")


@needs_ray
def test_two_ray_workers_give_the_sequential_tables(tiny):
    work = tiny["tmp"] / "ray"
    proc = grid_cli(tiny["path"], work)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "5 run(s) finished now, 0 already done, 5 total" in out, out
    assert "done 5/5" in err  # the driver's progress, a line per finished cell
    assert tables(work) == tiny["tables"]
    assert sorted(p.name for p in (work / "results").glob("*.json")) == \
        sorted(p.name for p in (tiny["reference"] / "results").glob("*.json"))
    assert not list(work.glob("failed/*.json"))
    # a re-run finds every cell done (and starts no cluster)
    again = grid_cli(tiny["path"], work)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0 and "0 run(s) finished now, 5 already done" in out, err[-2000:]


@needs_ray
@needs_proc
def test_a_worker_killed_mid_cell_is_retried_and_the_tables_are_identical(tiny):
    work = tiny["tmp"] / "killed"
    proc = grid_cli(tiny["path"], work)

    def student_mid_training():
        """A worker training a student that has a checkpoint (it holds files open in that cell's folder)."""
        cells = {str(p.parents[2]) for p in (work / "runs").glob("student-*/model.work/checkpoints/checkpoint-*")}
        for pid, cmd in descendants(proc.pid).items():
            if cmd.startswith(CELL_TITLE) and cells & open_folders(pid):
                return pid
        return None

    victim = wait_for(proc, student_mid_training)
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "5 run(s) finished now" in out, out
    records = [json.loads(p.read_text()) for p in (work / "results").glob("*.json")]
    assert len(records) == 5 and any(r["resumed"] for r in records)  # the killed cell ran again, from its files
    assert tables(work) == tiny["tables"]


@needs_ray
@needs_proc
@pytest.mark.slow
def test_ctrl_c_stops_the_cluster_and_a_re_run_resumes(tiny):
    work = tiny["tmp"] / "interrupted"
    proc = grid_cli(tiny["path"], work)
    wait_for(proc, lambda: any((work / "runs").glob("student-*/model.work/checkpoints/checkpoint-*")))
    cluster = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err, err[-3000:]
    time.sleep(2)
    assert not [pid for pid in cluster if Path(f"/proc/{pid}").exists() and
                "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()], "Ray processes left running"
    again = grid_cli(tiny["path"], work)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert tables(work) == tiny["tables"]


def test_without_ray_the_backend_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(ray_grid_dict(tmp_path)))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as if it were not installed
    capsys.readouterr()  # the tiny teacher's writing bars
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "run", str(path), "--work-dir", str(tmp_path / "w"), "--backend", "ray"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "pip install 'polydistill[ray]'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "w").exists()  # nothing written


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers only apply to --backend ray"),
    (["--backend", "dask"], "--backend dask is not a backend"),
])
def test_ray_flags_need_the_ray_backend(tmp_path, capsys, args, message):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(ray_grid_dict(tmp_path)))
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "run", str(path), "--work-dir", str(tmp_path / "w"), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@needs_ray
def test_workers_size_a_local_cluster_only(tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(ray_grid_dict(tmp_path)))
    with pytest.raises(SystemExit) as exit_:
        main(["grid", "run", str(path), "--work-dir", str(tmp_path / "w"), "--backend", "ray", "--address", "auto",
              "--workers", "2"])
    assert exit_.value.code == 2 and "--workers sizes a local Ray cluster" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before any cluster or file

"""``grid run --backend ray``: every cell of a grid a Ray task, on a local Ray cluster or a real one.

The driver (the ``grid run`` process) owns the store, as in the sequential runner:

- it decides which cells are ready (finished cells are skipped: their step is done, the one rule of both
  backends, :meth:`polydistill.experiments.store.ResultStore.cell_step`; a student waits until its teacher's
  result is in the store) and submits them as tasks with their resource request (``num_cpus``/``num_gpus``);
- it holds each submitted cell's lock (:func:`polydistill.io.try_lock`, the one the sequential runner takes),
  so a second ``grid run`` sharing the work dir, sequential or Ray, never starts the same cell;
- a task runs the cell with :func:`polydistill.experiments.runner.execute` (models and Trainer checkpoints go
  to ``runs/<run_id>/`` of the work dir, which every node must see) and *returns* the record; the driver
  writes it (``results/<run_id>.json``, atomically: the cell's step finished) or the failure (``failed/<run_id>.json``). A worker never
  writes the store's results, so a worker killed at any moment cannot leave a half result: Ray re-runs the
  task (``max_retries``) and the cell resumes from its last checkpoint like a re-run of the sequential grid;
- Ctrl-C (or any error) cancels the tasks in flight (their workers are killed) and releases the locks; a
  re-run skips the finished cells and resumes the others.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError
from polydistill.experiments.grid import RunSpec
from polydistill.experiments.runner import (
    GridSummary,
    TeacherGateError,
    _cleanup,
    execute,
    prepare_grid,
    quiet_libraries,
    raise_if_failed,
)
from polydistill.experiments.schema import ExperimentConfig
from polydistill.experiments.store import open_store
from polydistill.io import try_lock
from polydistill.ranks import world_size

INSTALL = "--backend ray needs Ray, which is not installed: pip install 'polydistill[ray]'."
# variables a cell reads that a cluster's workers do not inherit from the driver (a local cluster does)
FORWARDED_ENV = ("POLYDISTILL_DATA_ROOT", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "TOKENIZERS_PARALLELISM")


@dataclass(frozen=True)
class RaySettings:
    """Where and how the cells run. ``address`` None: a local cluster of ``workers`` cells at a time (default:
    the machine's cores / ``cpus_per_cell``); else a running cluster (``auto``, ``HOST:6379``, ``ray://HOST:10001``)."""

    address: str | None = None
    workers: int | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    max_retries: int = 3  # re-runs of a cell whose worker died (killed, out of memory, node lost)


def require_ray():
    """The ``ray`` module, or one sentence saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PolydistillError(INSTALL) from None
    return ray


def check(settings: RaySettings):
    """The ``ray`` module for ``settings``, or one sentence: Ray missing, flags that contradict each other."""
    ray = require_ray()

    if world_size() > 1:
        raise PolydistillError("--backend ray starts its own worker processes: run it as one process, not under "
                               "torchrun.")
    if settings.address is not None and settings.workers is not None:
        raise PolydistillError("--workers sizes a local Ray cluster; with --address the cluster's nodes decide how "
                               "many cells run at a time (use --cpus-per-cell / --gpus-per-cell).")
    return ray


def cell_threads(config: ExperimentConfig, settings: RaySettings) -> int:
    """torch threads of one cell: the grid's ``torch_threads`` (``--threads``), else its CPUs."""
    return config.torch_threads or max(1, int(settings.cpus_per_cell))


def run_cell(spec: RunSpec, teacher_spec: RunSpec | None, work_dir: str, grid: str, gate_margin: float | None,
             threads: int, cwd: str) -> tuple[str, Any]:
    """One cell on a worker: ``("done", record)``, ``("fail", why)`` (the cell has no result), ``("gate", why)``
    (a weak teacher: the grid stops) or ``("abort", why)`` (this worker cannot run any cell)."""
    import torch

    if Path(cwd).is_dir():  # relative paths of the config (models, data, work dir) as the driver reads them
        os.chdir(cwd)
    if not (Path(work_dir) / "grids" / f"{grid}.json").is_file():
        return "abort", (f"the Ray worker on {socket.gethostname()} does not see the work dir {work_dir}; put it "
                         "(and the config's models and data) on a filesystem every node mounts, named by the same path.")
    quiet_libraries()
    torch.set_num_threads(threads)
    try:
        return "done", execute(spec, open_store(work_dir), teacher_spec, gate_margin)
    except TeacherGateError as err:
        return "gate", str(err)
    except PolydistillError as err:  # a NaN, a refused input: this cell has no result
        return "fail", str(err)


def _connect(ray, settings: RaySettings) -> tuple[bool, float]:
    """Start or join a cluster: (whether this call started the connection, cells that fit at a time)."""
    if ray.is_initialized():  # a caller (a notebook, a test) connected already
        started = False
    else:
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        # the cells' own output stays in the Ray logs; the driver shows the grid's progress
        common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if settings.address is None:
            workers = settings.workers or max(1, int((os.cpu_count() or 1) / settings.cpus_per_cell))
            ray.init(num_cpus=max(1, math.ceil(workers * settings.cpus_per_cell)), **common)
        else:
            common.pop("include_dashboard")  # the cluster's own setting
            try:
                ray.init(address=settings.address, runtime_env={"env_vars": env} if env else None, **common)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise PolydistillError(f"Cannot join the Ray cluster at --address {settings.address} "
                                       f"({' '.join(str(err).split())[:200]}); start it first (ray start --head, "
                                       "docs/scaling.md) or check the address.") from None
        started = True
    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1.0) / settings.cpus_per_cell if settings.cpus_per_cell else float("inf")
    if settings.gpus_per_cell:
        gpus = resources.get("GPU", 0.0)
        if gpus < settings.gpus_per_cell:
            if started:
                ray.shutdown()
            raise PolydistillError(f"--gpus-per-cell {settings.gpus_per_cell:g} asks for more GPUs than the Ray cluster "
                                   f"has ({gpus:g}); lower it or add GPU nodes.")
        slots = min(slots, gpus / settings.gpus_per_cell)
    if slots < 1:
        if started:
            ray.shutdown()
        raise PolydistillError(f"--cpus-per-cell {settings.cpus_per_cell:g} asks for more CPUs than the Ray cluster has "
                               f"({resources.get('CPU', 0.0):g}); lower it or add nodes.")
    return started, slots


def run_grid_ray(
    config: ExperimentConfig,
    work_dir: str | os.PathLike | None = None,
    on_event: Callable[[str, RunSpec, int, int], None] | None = None,
    only: list[str] | None = None,
    settings: RaySettings | None = None,
) -> GridSummary:
    """:func:`polydistill.experiments.runner.run_grid` with the cells as Ray tasks (same store, same records,
    same events: start / skip / done / fail; no per-step events)."""
    settings = settings or RaySettings()
    ray = check(settings)
    work_dir, store, specs = prepare_grid(config, work_dir, only)
    if all(store.has(s.run_id) for s in specs):  # nothing to run: no cluster to start
        for i, spec in enumerate(specs):
            if on_event:
                on_event("skip", spec, i, len(specs))
        return GridSummary(work_dir=work_dir, total=len(specs), skipped=len(specs))
    started, slots = _connect(ray, settings)
    try:
        return _drive(ray, config, work_dir, store, specs, settings, slots, on_event)
    finally:
        if started:
            ray.shutdown()


def _cell_task(ray, settings: RaySettings):
    """:func:`run_cell` as a Ray remote function with the cell's resource request and retries."""
    return ray.remote(run_cell).options(
        num_cpus=settings.cpus_per_cell, num_gpus=settings.gpus_per_cell, max_retries=settings.max_retries,
        retry_exceptions=False, name="polydistill-cell")


def _task_outcome(ray, ref, max_retries: int) -> tuple[str, Any]:
    """A finished task's ``(status, payload)``, or a failure when its worker was lost every time."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError:
        raise  # a bug in polydistill (not a PolydistillError): its traceback, as the sequential runner
    except ray.exceptions.RayError as err:  # the worker or its node died max_retries + 1 times
        return "fail", (f"its Ray worker was lost {max_retries + 1} times "
                        f"({type(err).__name__}); see the Ray logs (/tmp/ray/session_latest/logs).")


@dataclass
class _Driver:
    """The driver's state while the cells of a grid run as Ray tasks: cells in flight, failures, summary."""

    ray: Any
    remote: Any  # run_cell as a Ray task (:func:`_cell_task`)
    config: ExperimentConfig
    work_dir: Path
    store: Any
    specs: list[RunSpec]
    settings: RaySettings
    on_event: Callable[[str, RunSpec, int, int], None] | None
    threads: int = field(init=False)
    by_id: dict[str, RunSpec] = field(init=False)
    index: dict[str, int] = field(init=False)
    total: int = field(init=False)
    failed: dict[str, str] = field(init=False, default_factory=dict)
    summary: GridSummary = field(init=False)
    in_flight: dict[Any, tuple[RunSpec, contextlib.ExitStack]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.threads = cell_threads(self.config, self.settings)
        self.by_id = {s.run_id: s for s in self.specs}
        self.index = {s.run_id: i for i, s in enumerate(self.specs)}
        self.total = len(self.specs)
        self.summary = GridSummary(work_dir=self.work_dir, total=self.total)

    def event(self, kind: str, spec: RunSpec) -> None:
        """Report ``kind`` (start / skip / done / fail) for ``spec`` to ``on_event``, if any."""
        if self.on_event:
            self.on_event(kind, spec, self.index[spec.run_id], self.total)

    def submit(self, spec: RunSpec) -> bool:
        """Lock ``spec``'s cell and submit it as a task; False when another process has it or it is done."""
        held = contextlib.ExitStack()
        if not held.enter_context(try_lock(self.store.run_dir(spec.run_id))):
            held.close()  # another `grid run` sharing this work dir is on it
            return False
        if self.store.has(spec.run_id):  # finished meanwhile: skipped next pass
            held.close()
            return False
        ref = self.remote.remote(spec, self.by_id.get(spec.teacher_run or ""), str(self.work_dir), self.config.name,
                                 self.config.teacher_gate_margin, self.threads, os.getcwd())
        self.in_flight[ref] = (spec, held)
        self.event("start", spec)
        return True

    def finish(self, ref) -> None:
        """Write the finished task ``ref``'s record or failure to the store and release its cell's lock."""
        spec, held = self.in_flight.pop(ref)
        with held:
            status, payload = _task_outcome(self.ray, ref, self.settings.max_retries)
            if status == "gate":
                raise TeacherGateError(payload)
            if status == "abort":
                raise PolydistillError(payload)
            if status == "fail":
                self.failed[spec.run_id] = payload
                self.store.fail(spec.run_id, spec.label, payload)
                self.event("fail", spec)
                return
            self.store.save(spec.run_id, payload)
            _cleanup(spec, self.store, self.config.keep_student_models)
        self.summary.finished.append(spec.run_id)
        self.event("done", spec)

    def schedule(self, pending: list[RunSpec], queue_limit: int) -> tuple[list[RunSpec], bool]:
        """Skip, fail or submit each pending cell it can: (the cells still waiting, whether any moved on)."""
        progressed, waiting = False, []
        for spec in pending:
            if self.store.has(spec.run_id):
                self.summary.skipped += 1
                progressed = True
                self.event("skip", spec)
            elif spec.teacher_run in self.failed:  # its teacher failed: nothing to distil from
                self.failed[spec.run_id] = f"its teacher failed ({self.failed[spec.teacher_run]})"
                progressed = True
                self.event("fail", spec)
            elif (spec.teacher_run and not self.store.has(spec.teacher_run)) or len(self.in_flight) >= queue_limit \
                    or not self.submit(spec):
                waiting.append(spec)  # its teacher is not finished, the queue is full, or another process has it
            else:
                progressed = True
        return waiting, progressed

    def collect(self) -> None:
        """Wait up to 5 s for a task in flight to end and record each that did."""
        done, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=5.0)
        for ref in done:
            self.finish(ref)

    def cancel_in_flight(self) -> None:
        """Cancel the tasks in flight (their workers killed, their checkpoints kept) and release their locks."""
        for ref, (_, held) in list(self.in_flight.items()):
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
            held.close()


def _drive(ray, config, work_dir: Path, store, specs: list[RunSpec], settings: RaySettings, slots: float,
           on_event) -> GridSummary:
    """Run ``specs`` as Ray tasks, as many at a time as ``slots``, until each is done, skipped or failed."""
    driver = _Driver(ray, _cell_task(ray, settings), config, work_dir, store, specs, settings, on_event)
    # as many cells in flight as fit at a time: every one is running (the progress says so truthfully), and
    # the others stay unlocked for a second `grid run` on another cluster sharing the work dir
    queue_limit = max(1, int(min(slots, 100_000)))
    start = time.time()
    pending = list(specs)
    try:
        while pending or driver.in_flight:
            pending, progressed = driver.schedule(pending, queue_limit)
            if driver.in_flight:
                driver.collect()
            elif pending and not progressed:
                time.sleep(5)  # waiting for another `grid run` sharing the work dir
    finally:
        # Ctrl-C, a weak teacher, an error: stop the cells in flight and release their locks
        driver.cancel_in_flight()
    summary = driver.summary
    summary.seconds = time.time() - start
    raise_if_failed(driver.failed, summary, driver.by_id, config.name, work_dir)
    return summary

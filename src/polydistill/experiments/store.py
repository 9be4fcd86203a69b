"""The results store of a grid: one JSON per finished run, written atomically.

Layout of a work dir::

    grids/<name>.json         resolved config and run ids of each grid run here (grids may share runs)
    results/<run_id>.json     one finished run (spec, metrics, loss curve, wall time, versions)
    failed/<run_id>.json      why a run stopped (NaN, a refused input); removed when it later finishes
    runs/<run_id>/            models and Trainer checkpoints of runs in progress or kept
    report/                   written by ``grid report``

A result file exists if and only if its run finished: that is what makes re-running safe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError
from polydistill.io import atomic_write_json, read_json


class ResultStore:
    def __init__(self, work_dir: str | os.PathLike):
        self.root = Path(work_dir)
        self.results_dir = self.root / "results"

    def result_path(self, run_id: str) -> Path:
        return self.results_dir / f"{run_id}.json"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def has(self, run_id: str) -> bool:
        return self.result_path(run_id).is_file()

    def load(self, run_id: str) -> dict[str, Any]:
        return read_json(self.result_path(run_id))

    def save(self, run_id: str, record: dict[str, Any]) -> Path:
        path = atomic_write_json(self.result_path(run_id), {"run_id": run_id, **record})
        (self.root / "failed" / f"{run_id}.json").unlink(missing_ok=True)
        return path

    def fail(self, run_id: str, label: str, message: str) -> Path:
        """Record why a run stopped; it has no result, so the next ``grid run`` tries it again."""
        return atomic_write_json(self.root / "failed" / f"{run_id}.json",
                                 {"run_id": run_id, "label": label, "error": message})

    def grids(self) -> dict[str, list[str]]:
        """Run ids of every grid recorded in this work dir, by grid name."""
        folder = self.root / "grids"
        if not folder.is_dir():
            return {}
        return {p.stem: [r["run_id"] for r in read_json(p)["runs"]] for p in sorted(folder.glob("*.json"))
                if not p.name.startswith(".")}

    def records(self) -> list[dict[str, Any]]:
        """Every finished run, sorted by run id (temporary files from a killed write are ignored)."""
        if not self.results_dir.is_dir():
            return []
        out = []
        for path in sorted(self.results_dir.glob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError as err:
                raise PolydistillError(f"{path} is not valid JSON ({err.msg}); delete it and re-run the grid.") from err
        return out


def open_store(work_dir: str | os.PathLike, must_exist: bool = False) -> ResultStore:
    store = ResultStore(work_dir)
    if must_exist and not store.results_dir.is_dir():
        raise PolydistillError(
            f"{work_dir} holds no results (no results/ folder); pass the work dir of a 'polydistill grid run'."
        )
    return store

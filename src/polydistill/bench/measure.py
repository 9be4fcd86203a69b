"""Speed and size of models, measured side by side in one process.

Sizes: parameter counts split into embeddings / encoder layers / the rest (pooler, task head), and
bytes on disk. Speed: latency at batch 1 and throughput at a larger batch, for each sequence length
and device, as the median of repeated timings after warm-up. Models are *interleaved*: each repeat
runs every model on every case, in an order rotated per repeat, so machine drift (other jobs, turbo,
thermal) hits all models alike and ratios between them stay meaningful on a noisy machine.

Every sample is read on two clocks, wall time and process CPU time (see :data:`CLOCKS`). The timing
core (:func:`time_interleaved`) only sees callables and clocks, so it is tested with fake clocks; :func:`bench_models` wires it to real models.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polydistill.architectures import ParamCounts, count_parameters, get_adapter
from polydistill.errors import PolydistillError, require
from polydistill.export.machine import machine_profile
from polydistill.export.runtime import is_exported_dir, runtime_info
from polydistill.io import package_versions
from polydistill.modeling import is_hub_id, resolve_model_dir

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".onnx_data")
# Wall time is what a user waits for. Process CPU time is recorded alongside because on a shared
# machine a process also waits for a core: with one torch thread, CPU time is the work itself and
# stays put when other jobs load the machine (with N threads it sums over threads, spin-waits included).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True, order=True)
class Case:
    """One timed configuration: device, sequence length, batch size."""

    device: str
    seq_len: int
    batch_size: int

    @property
    def key(self) -> str:
        return f"{self.device}/b{self.batch_size}/L{self.seq_len}"

    @property
    def kind(self) -> str:
        return "latency" if self.batch_size == 1 else "throughput"


@dataclass
class CaseTiming:
    """Samples of one model on one case, per clock ("wall": elapsed time, "cpu": process CPU time)."""

    case: Case
    samples_s: dict[str, list[float]]

    def median_s(self, clock: str = "wall") -> float:
        return statistics.median(self.samples_s[clock])

    def sequences_per_s(self, clock: str = "wall") -> float:
        median = self.median_s(clock)
        return self.case.batch_size / median if median > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        clocks = list(self.samples_s)
        return {
            **asdict(self.case),
            "key": self.case.key,
            "kind": self.case.kind,
            "median_s": {c: self.median_s(c) for c in clocks},
            "sequences_per_s": {c: self.sequences_per_s(c) for c in clocks},
            "tokens_per_s": {c: self.sequences_per_s(c) * self.case.seq_len for c in clocks},
            "samples_s": self.samples_s,
        }


@dataclass
class ModelResult:
    name: str
    path: str
    params: ParamCounts
    disk_bytes: int  # the whole directory
    weights_bytes: int  # weight files only
    shape: dict[str, Any]  # layers, hidden, intermediate, heads, vocab, attention implementation
    timings: dict[str, CaseTiming] = field(default_factory=dict)
    source: str | None = None  # the model's name without its runtime (bench --runtimes)
    runtime: str | None = None  # torch-fp32, onnx-int8, ... (bench --runtimes)

    def median_s_of(self, key: str, clock: str = "wall") -> float:
        return self.timings[key].median_s(clock)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            **({"source": self.source, "runtime": self.runtime} if self.runtime else {}),
            "params": asdict(self.params),
            "disk_bytes": self.disk_bytes,
            "weights_bytes": self.weights_bytes,
            "shape": self.shape,
            "timings": {key: timing.to_dict() for key, timing in self.timings.items()},
        }


@dataclass
class BenchReport:
    models: list[ModelResult]
    cases: list[Case]
    settings: dict[str, Any]
    ratios: dict[str, dict[str, Any]]  # model name -> ratios against models[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.models[0].name if self.models else None,
            "machine": self.settings.get("machine", {}).get("profile", {}).get("label"),
            "settings": self.settings,
            "cases": [case.key for case in self.cases],
            "models": [model.to_dict() for model in self.models],
            "ratios": self.ratios,
        }


# ---------------------------------------------------------------------------------------------- sizes


def disk_size(path: str | os.PathLike) -> tuple[int, int]:
    """(bytes of every file under ``path``, bytes of its weight files)."""
    total = weights = 0
    for file in Path(path).rglob("*"):
        if file.is_file():
            size = file.stat().st_size
            total += size
            if file.name.endswith(WEIGHT_SUFFIXES):
                weights += size
    return total, weights


def model_shape(model) -> dict[str, Any]:
    config = model.config
    return {
        "model_type": config.model_type,
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "intermediate": config.intermediate_size,
        "heads": config.num_attention_heads,
        "vocab": config.vocab_size,
        "attn_implementation": getattr(config, "_attn_implementation", None),
    }


# --------------------------------------------------------------------------------------------- timing


def make_cases(lengths: Sequence[int], devices: Sequence[str], batch_size: int = 32) -> list[Case]:
    """Latency (batch 1) and throughput (``batch_size``) for every length on every device."""
    require(len(lengths) > 0, "No sequence lengths given; pass e.g. --lengths 32,128.")
    require(all(n > 0 for n in lengths), f"Sequence lengths must be positive, got {list(lengths)}.")
    require(batch_size >= 1, f"Batch size must be at least 1, got {batch_size}.")
    batches = sorted({1, batch_size})
    return [Case(d, n, b) for d in devices for n in lengths for b in batches]


def interleaved_schedule(names: Sequence[str], cases: Sequence[Case], repeats: int) -> list[tuple[int, Case, str]]:
    """The timed order: repeat → case → every model, the model order rotated by one each repeat.

    Rotation means no model is always first after a case switch (cache, allocator and frequency
    effects), and each model's samples are spread over the whole run.
    """
    order: list[tuple[int, Case, str]] = []
    for r in range(repeats):
        shift = r % len(names) if names else 0
        rotated = list(names[shift:]) + list(names[:shift])
        for case in cases:
            order.extend((r, case, name) for name in rotated)
    return order


def time_interleaved(
    runners: Mapping[str, Callable[[Case], Callable[[], None]]],
    cases: Sequence[Case],
    repeats: int,
    warmup: int = 1,
    clocks: Mapping[str, Callable[[], float]] | None = None,
    on_step: Callable[[str, Case, str], None] | None = None,
) -> dict[str, dict[Case, dict[str, list[float]]]]:
    """Time ``runners[name](case)()`` for every model and case: samples[name][case][clock] in seconds.

    ``runners[name](case)`` prepares inputs (untimed) and returns the call to time. Warm-up calls
    run first for every model and case and are not recorded. ``clocks`` defaults to :data:`CLOCKS`.
    """
    require(repeats >= 1, f"repeats must be at least 1, got {repeats}.")
    require(warmup >= 0, f"warmup must be 0 or more, got {warmup}.")
    clocks = dict(clocks or CLOCKS)
    names = list(runners)
    calls = {(name, case): runners[name](case) for case in cases for name in names}
    for case in cases:
        for name in names:
            for _ in range(warmup):
                calls[name, case]()
                if on_step:
                    on_step("warm-up", case, name)
    samples: dict[str, dict[Case, dict[str, list[float]]]] = {
        name: {case: {clock: [] for clock in clocks} for case in cases} for name in names}
    for _, case, name in interleaved_schedule(names, cases, repeats):
        starts = {clock: read() for clock, read in clocks.items()}
        calls[name, case]()
        for clock, read in clocks.items():
            samples[name][case][clock].append(read() - starts[clock])
        if on_step:
            on_step("timed", case, name)
    return samples


def summarise(samples: Mapping[Case, Mapping[str, list[float]]]) -> dict[str, CaseTiming]:
    return {case.key: CaseTiming(case, {c: list(v) for c, v in by_clock.items()}) for case, by_clock in samples.items()}


def _clocks_of(model: ModelResult) -> list[str]:
    return list(next(iter(model.timings.values())).samples_s) if model.timings else []


def compute_ratios(models: Sequence[ModelResult]) -> dict[str, dict[str, Any]]:
    """Each model against the first: size fractions and speed-ups (baseline time ÷ model time)."""
    if not models:
        return {}
    base = models[0]

    def frac(a: float, b: float) -> float | None:
        return a / b if b else None

    ratios = {}
    for model in models:
        ratios[model.name] = {
            "params": frac(model.params.total, base.params.total),
            "encoder_params": frac(model.params.encoder, base.params.encoder),
            "embedding_params": frac(model.params.embedding, base.params.embedding),
            "disk": frac(model.disk_bytes, base.disk_bytes),
            # per clock: {case key: speed-up}
            "speedup": {
                clock: {
                    key: frac(base.timings[key].median_s(clock), timing.median_s(clock))
                    for key, timing in model.timings.items()
                    if key in base.timings and clock in base.timings[key].samples_s
                }
                for clock in _clocks_of(model)
            },
        }
    best = best_of_baseline(models)
    if best:
        for model in models:
            ratios[model.name]["speedup_vs_baseline_best"] = {
                clock: {key: frac(best[clock][key][1], timing.median_s(clock)) for key, timing in model.timings.items()
                        if key in best.get(clock, {}) and clock in timing.samples_s}
                for clock in _clocks_of(model)
            }
    return ratios


def best_of_baseline(models: Sequence[ModelResult]) -> dict[str, dict[str, tuple[str, float]]]:
    """With several runtimes of the first model (bench --runtimes): per clock and case, its fastest runtime
    and that median time — the baseline "in its own best runtime"; {} when the first model has one runtime."""
    if not models or models[0].runtime is None:
        return {}
    group = [m for m in models if m.source == models[0].source]
    if len(group) < 2:
        return {}
    best: dict[str, dict[str, tuple[str, float]]] = {}
    for clock in _clocks_of(models[0]):
        for key in models[0].timings:
            timed = [(m.median_s_of(key, clock), m.runtime or m.name) for m in group if key in m.timings]
            seconds, runtime = min(timed)
            best.setdefault(clock, {})[key] = (runtime, seconds)
    return best


# ------------------------------------------------------------------------------------------ real runs


def available_devices(requested: str = "auto") -> list[str]:
    import torch

    if requested == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    devices = [d.strip() for d in requested.split(",") if d.strip()]
    for device in devices:
        require(device in ("cpu", "cuda"), f"Unknown device {device!r}; use cpu, cuda or auto.")
        require(device != "cuda" or torch.cuda.is_available(), "CUDA was requested but no GPU is visible; use --device cpu.")
    return devices


def unique_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short display names (directory names), made unique with a numeric suffix."""
    names: list[str] = []
    for path in paths:
        base = Path(path).name or str(path)
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def _make_runner(model_by_device: Mapping[str, Any], seed: int = 0) -> Callable[[Case], Callable[[], None]]:
    import torch

    def prepare(case: Case) -> Callable[[], None]:
        model = model_by_device[case.device]
        config = model.config
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, config.vocab_size, (case.batch_size, case.seq_len), generator=generator)
        if config.pad_token_id is not None and config.vocab_size > 1:
            # Real text has no padding inside a full-length sequence.
            ids = ids.masked_fill(ids == config.pad_token_id, (config.pad_token_id + 1) % config.vocab_size)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if getattr(config, "type_vocab_size", 0):
            inputs["token_type_ids"] = torch.zeros_like(ids)
        inputs = {k: v.to(case.device) for k, v in inputs.items()}
        sync = torch.cuda.synchronize if case.device == "cuda" else (lambda: None)

        def run() -> None:
            with torch.inference_mode():
                model(**inputs)
            sync()

        return run

    return prepare


def _check_lengths(name: str, config, lengths: Sequence[int]) -> None:
    limit = get_adapter(config).position_limit(config)
    if limit is None:
        return
    too_long = [n for n in lengths if n > limit]
    require(not too_long, f"Model {name} accepts at most {limit} tokens but --lengths asks for {too_long}; "
            "pass shorter --lengths.")


def machine_info() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)

    info["profile"] = machine_profile().to_dict()  # CPU family, ISA flags, threads, GPU; "label" for tables

    info.update(runtime_info())  # CPU ISA flags (avx512_vnni, ...) and onnxruntime's version / providers
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def _runtime_entries(paths: Sequence[str | os.PathLike], names: Sequence[str], runtimes: Sequence[str],
                     scratch: Path, on_load: Callable[[str], None] | None, baseline_runtimes: Sequence[str] | None = None,
                     ) -> list[tuple[str, str, str | None, Path, Any]]:
    """(entry name, model name, runtime, directory, loaded model) for every model in every runtime; the
    first model's torch-fp32 comes first (the baseline). An exported directory is measured as it is."""
    from polydistill.export.runtimes import (
        SPECS,
        CandidateBuilder,
        is_openvino_dir,
        load_runtime_dir,
        load_source,
        runtime_of_dir,
    )

    calibrated = [r for r in runtimes if SPECS[r].calibrated]
    require(not calibrated, f"bench --runtimes cannot build {calibrated[0] if calibrated else ''} (it is calibrated "
            "on task data); export it with polydistill export --runtime ... --dataset ... and bench that directory.")
    entries: list[tuple[str, str, str | None, Path, Any]] = []
    for index, (name, path) in enumerate(zip(names, paths, strict=True)):
        folder = Path(path)
        if is_exported_dir(folder) or is_openvino_dir(folder):
            runtime = runtime_of_dir(folder)
            if on_load:
                on_load(name)
            entries.append((f"{name}:{runtime}", name, runtime, folder, load_runtime_dir(folder)))
            continue
        first = runtimes if baseline_runtimes is None else baseline_runtimes
        wanted = list(dict.fromkeys(["torch-fp32", *first])) if index == 0 else list(runtimes)
        builder = None
        for runtime in wanted:
            if on_load:
                on_load(f"{name}:{runtime}")
            if runtime == "torch-fp32":
                entries.append((f"{name}:{runtime}", name, runtime, folder, load_for_inference_cpu(folder)))
                continue
            if builder is None:
                builder = CandidateBuilder(load_source(folder), scratch / f"{index}-{name}")
            target = scratch / f"{index}-{name}" / runtime
            builder.build(runtime, target)
            entries.append((f"{name}:{runtime}", name, runtime, target, load_runtime_dir(target)))
    return entries


def load_for_inference_cpu(path: str | os.PathLike):
    from polydistill.export.runtimes import load_for_inference

    return load_for_inference(path).eval()


def _model_dirs(paths: Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """The model directories of ``paths`` (a hub id: its snapshot), each checked to be a model directory."""
    dirs = [resolve_model_dir(path) if is_hub_id(path) else path for path in paths]
    for path in dirs:
        p = Path(path)
        require(p.exists(), f"Model directory {path} does not exist; pass a directory written by save_pretrained.")
        require((p / "config.json").is_file(), f"{path} has no config.json; pass a Hugging Face model directory.")
    return dirs


def _sized_result(entry: str, source: str, runtime: str | None, path: Path, model) -> ModelResult:
    """The entry's result with its sizes and shape (the timings are added once measured)."""
    total, weights = disk_size(path)
    exported = hasattr(model, "runtime_info")
    shape = {**model_shape(model), **(model.runtime_info() if exported else
                                      {"runtime": "torch", "dtype": str(model.dtype).removeprefix("torch.")})}
    params = model.parameter_counts() if exported else count_parameters(model)
    return ModelResult(entry, str(path), params, total, weights, shape, source=source if runtime else None,
                       runtime=runtime)


def _settings_record(*, repeats: int, warmup: int, lengths: Sequence[int], batch_size: int, devices: list[str],
                     clocks: Mapping[str, Callable[[], float]] | None, runtimes: Sequence[str] | None,
                     ) -> dict[str, Any]:
    """The report's settings: how it was measured, on which machine, with which versions."""
    return {
        "repeats": repeats,
        "warmup": warmup,
        "lengths": list(lengths),
        "batch_size": batch_size,
        "devices": devices,
        "interleaved": True,
        "statistic": "median",
        "clocks": list(clocks or CLOCKS),
        "machine": machine_info(),
        "versions": package_versions(),
        **({"runtimes": list(runtimes)} if runtimes else {}),
    }


def bench_models(
    paths: Sequence[str | os.PathLike],
    *,
    lengths: Sequence[int] = (32, 128),
    batch_size: int = 32,
    repeats: int = 5,
    warmup: int = 1,
    threads: int | None = None,
    device: str = "auto",
    names: Sequence[str] | None = None,
    clocks: Mapping[str, Callable[[], float]] | None = None,
    on_step: Callable[[str, Case, str], None] | None = None,
    on_load: Callable[[str], None] | None = None,
    runtimes: Sequence[str] | None = None,
    work_dir: str | os.PathLike | None = None,
    baseline_runtimes: Sequence[str] | None = None,
) -> BenchReport:
    """Load every model, measure sizes, time all of them interleaved; ratios are against ``paths[0]``.

    ``runtimes`` (``torch-fp32``, ``torch-bf16``, ``onnx-int8``, ...): measure every PyTorch model in each of
    them (built under ``work_dir``, default a temporary folder), the first model's torch-fp32 first; ratios
    are then against the first model in fp32 PyTorch (``speedup``) and in its fastest runtime per case
    (``speedup_vs_baseline_best``). CPU only. ``baseline_runtimes``: the first model's runtimes when they
    differ (``["torch-fp32"]`` where only the fp32 ratio is read: no export of the teacher)."""
    import torch

    from polydistill.export.runtimes import load_for_inference

    require(len(paths) >= 1, "No models given; pass --model DIR at least once (the first is the baseline).")
    names = list(names) if names else unique_names(paths)

    paths = _model_dirs(paths)
    require(len(set(names)) == len(names) == len(paths), "Model names must be unique, one per model.")
    if threads is not None:
        require(threads >= 1, f"threads must be at least 1, got {threads}.")
        torch.set_num_threads(threads)
    if runtimes:
        from polydistill.export.runtimes import parse_runtimes

        runtimes = parse_runtimes(runtimes)
        require(device in ("auto", "cpu"), "bench --runtimes measures on the CPU; pass --device cpu.")
        device = "cpu"
    devices = available_devices(device)
    cases = make_cases(lengths, devices, batch_size)

    results: list[ModelResult] = []
    runners = {}
    with tempfile.TemporaryDirectory(prefix="polydistill-bench-", dir=work_dir) as scratch:
        entries: list[tuple[str, str, str | None, Path, Any]]
        if runtimes:
            entries = _runtime_entries(paths, names, runtimes, Path(scratch), on_load, baseline_runtimes)
        else:
            entries = []
            for name, path in zip(names, paths, strict=True):
                if on_load:
                    on_load(name)
                # a PyTorch or an exported (ONNX / OpenVINO) model directory
                entries.append((name, name, None, Path(path), load_for_inference(path).eval()))
        for entry, source, runtime, path, model in entries:
            _check_lengths(entry, model.config, lengths)
            results.append(_sized_result(entry, source, runtime, path, model))
            by_device = {"cpu": model}
            if "cuda" in devices:
                by_device["cuda"] = copy.deepcopy(model).to("cuda")
            runners[entry] = _make_runner(by_device)

        try:
            samples = time_interleaved(runners, cases, repeats, warmup, clocks=clocks, on_step=on_step)
        except RuntimeError as err:  # e.g. a sequence longer than the model's position table
            raise PolydistillError(f"A model failed to run on the benchmark inputs: {str(err).splitlines()[0][:200]}") from err
        runners.clear()
        entries.clear()
    for result in results:
        result.timings = summarise(samples[result.name])
    settings = _settings_record(repeats=repeats, warmup=warmup, lengths=lengths, batch_size=batch_size,
                                devices=devices, clocks=clocks, runtimes=runtimes)
    report = BenchReport(results, cases, settings, compute_ratios(results))
    best = best_of_baseline(results)
    if best:
        report.settings["baseline_best"] = {clock: {key: {"runtime": r, "median_s": t} for key, (r, t) in by.items()}
                                            for clock, by in best.items()}
    return report

"""``polydistill export``: a model directory → a deployable form (ONNX fp32 / int8; or, with ``--runtime``,
the standard form of a named runtime or the one measured fastest on this machine), optionally pushed to the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from polydistill.cli import options as opt
from polydistill.errors import PolydistillError
from polydistill.io import check_output_dir

FORMATS = ("onnx",)


def export(
    model: str | None = opt.MODEL_ARGUMENT,
    model_option: str | None = opt.MODEL_OPTION,
    out: Path = opt.OUT,
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    quantize: str | None = typer.Option(
        None, "--quantize", "-q",
        help="Plain ONNX export (without --runtime): int8 (default; dynamic, static with --calibration-data) | "
        "none: fp32."),
    runtime: str | None = typer.Option(
        None, "--runtime", "-r",
        help="auto: time the candidates on this machine for --serve and keep the fastest that passes the "
        "fidelity gate | torch-fp32 | torch-bf16 | onnx-fp32 | onnx-int8 | onnx-int8-unfused | onnx-int8-static | "
        "openvino | openvino-int8 (ONNX after onnxruntime's transformer fusion unless -unfused; openvino needs "
        "polydistill\\[openvino])."),
    serve: str = typer.Option("32x128,1x32", "--serve",
                              help="--runtime auto: the workloads to time, batch×length pairs."),
    candidates: str | None = typer.Option(
        None, "--candidates",
        help="--runtime auto: the runtimes to measure (default: all this machine runs natively)."),
    gate_examples: int = typer.Option(300, "--gate-examples", min=1,
                                      help="--runtime auto: test examples per language of --dataset for the gate."),
    gate_texts: Path | None = typer.Option(
        None, "--gate-texts", help="--runtime auto without --dataset: a text file, one input a line, for the "
        "argmax-agreement gate (default: 8 built-in sentences)."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="--runtime auto: timed runs per candidate and workload."),
    calibration_data: str | None = typer.Option(
        None, "--calibration-data", "--dataset", "-d", "--data",
        help="Dataset whose train examples calibrate static int8 (massive | massive-slots | tsm | universal-ner | a directory); "
        "without it int8 is dynamic. With --runtime auto its test examples are the fidelity gate."),
    languages: str = opt.LANGUAGES,
    data_root: str | None = opt.DATA_ROOT,
    calibration_examples: int = typer.Option(256, "--calibration-examples", min=1,
                                             help="Calibration examples (drawn with --seed)."),
    max_length: int = typer.Option(128, "--max-length", min=8, help="Maximum tokens per calibration example."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (14-20)."),
    exporter: str = typer.Option("torchscript", "--exporter",
                                 help="torchscript (torch.onnx tracer, fast) | dynamo (torch.export; needs onnxscript)."),
    per_channel: bool = typer.Option(True, "--per-channel/--per-tensor", help="int8 weight scales per output channel."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", help="Upload the exported directory to this Hub "
                                           "repo id (token: $HF_TOKEN or `hf auth login`)."),
    seed: int = opt.SEED,
    overwrite: bool = opt.OVERWRITE,
    threads: int | None = opt.THREADS,
) -> None:
    """Export a model directory (sequence / token classifier or bare encoder) to ONNX, fp32 or int8, or to
    the runtime --runtime names (auto: the fastest on this machine that keeps the fp32 model's predictions).

    The output holds the model (model.onnx, openvino_model.xml or safetensors), config.json, the tokenizer,
    polydistill.json with an export record (with --runtime auto: every candidate's timings and gate result,
    and the machine profile), and a model card; polydistill evaluate and polydistill bench load it."""
    from polydistill.export.convert import export_model

    opt.set_threads(threads)
    source = opt.one_model(model, model_option)
    _check_format_flags(format, runtime, quantize)
    check_output_dir(out, overwrite)  # before the data and the model load
    data = _load_calibration_data(calibration_data, languages, data_root, seed)
    if runtime is not None:
        _export_runtime(source, out, runtime, data=data, serve=serve, candidates=candidates, gate_examples=gate_examples,
                        gate_texts=gate_texts, repeats=repeats, calibration_examples=calibration_examples,
                        max_length=max_length, seed=seed, opset=opset, exporter=exporter, per_channel=per_channel,
                        overwrite=overwrite, push_to_hub=push_to_hub, threads=threads)
        return
    result = export_model(source, out, quantize=quantize or "int8", calibration_data=data,
                          calibration_examples=calibration_examples,
                          calibration_max_length=max_length, seed=seed, opset=opset, exporter=exporter,
                          per_channel=per_channel, overwrite=overwrite, push_to_hub=push_to_hub)
    _echo_onnx_export(source, result, push_to_hub)


def _check_format_flags(format: str, runtime: str | None, quantize: str | None) -> None:
    """Refuse an unknown --format, and --quantize together with --runtime."""
    if format not in FORMATS:
        raise PolydistillError(f"Unknown export format {format!r}; choose {', '.join(FORMATS)}.")
    if runtime is not None and quantize is not None:
        raise PolydistillError("--quantize is for the plain ONNX export; with --runtime name the precision in the "
                               "runtime (onnx-int8, onnx-fp32, ...).")


def _load_calibration_data(calibration_data: str | None, languages: str, data_root: str | None, seed: int):
    """The --calibration-data dataset (its ``languages``), or None without the flag."""
    if calibration_data is None:
        return None
    from polydistill.data import load_task_data

    return load_task_data(calibration_data, languages, data_root=data_root, seed=seed, purpose="evaluate")


def _echo_onnx_export(source, result, push_to_hub: str | None) -> None:
    """Print what a plain ONNX export wrote and how closely it matches the PyTorch model."""
    record, check = result.record, result.record["check"]
    agreement = (f"argmax agreement {100 * check['argmax_agreement']:.1f}%" if "argmax_agreement" in check
                 else f"min cosine {check['min_cosine']:.4f}")
    typer.echo(f"exported {source} to {result.path / record['file']} ({record['quantization']}, opset {record['opset']}, "
               f"{record['onnx_bytes'] / 1e6:.1f} MB; fp32 ONNX {record['onnx_fp32_bytes'] / 1e6:.1f} MB); vs PyTorch "
               f"on {check['sentences']} sentences: max |diff| {check['max_abs_diff']:.2g}, {agreement}.")
    if push_to_hub:
        typer.echo(f"pushed to the Hub: {push_to_hub}")


def _export_runtime(source, out, runtime: str, *, data, serve: str, candidates: str | None, gate_examples: int,
                    gate_texts: Path | None, repeats: int, calibration_examples: int, max_length: int, seed: int,
                    opset: int, exporter: str, per_channel: bool, overwrite: bool, push_to_hub: str | None,
                    threads: int | None) -> None:
    from polydistill.export.runtimes import AUTO, parse_runtimes

    chosen = parse_runtimes(runtime, allow_auto=True)
    if len(chosen) != 1:
        raise PolydistillError(f"--runtime takes one runtime (or auto), got {runtime!r}; bench several with "
                               "polydistill bench --runtimes.")
    common: dict[str, Any] = dict(calibration_examples=calibration_examples, calibration_max_length=max_length, seed=seed, opset=opset,
                  exporter=exporter, per_channel=per_channel, overwrite=overwrite, push_to_hub=push_to_hub)
    if chosen[0] != AUTO:
        from polydistill.export.runtimes import export_runtime

        result = export_runtime(source, out, chosen[0], calibration_data=data, **common)
        check = result.record["check"]
        typer.echo(f"exported {source} to {result.path} ({chosen[0]}, {result.record.get('bytes', 0) / 1e6:.1f} MB); vs "
                   f"PyTorch fp32 on {check['texts']} sentences: max |diff| {check['max_abs_diff']:.2g}; machine: "
                   f"{result.record['machine']['label']}.")
        return
    from polydistill.bench.select import export_auto

    texts = None
    if gate_texts is not None:
        if not gate_texts.is_file():
            raise PolydistillError(f"--gate-texts {gate_texts} is not a file; give a text file with one input a line.")
        texts = [line.strip() for line in gate_texts.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise PolydistillError(f"--gate-texts {gate_texts} holds no text; give one input a line.")
    result = export_auto(source, out, serve=serve, candidates=candidates.split(",") if candidates else None, data=data,
                         texts=texts, gate_examples=gate_examples, repeats=repeats, threads=threads,
                         on_step=lambda text: typer.echo(f"  {text}", err=True) if not text.startswith("timing") else None,
                         **common)
    selection = result.record["selection"]
    typer.echo(f"machine: {result.record['machine']['label']}; workloads {', '.join(selection['serve'])}; median ms:")
    for name, cand in selection["candidates"].items():
        times = ", ".join(f"{key} {1e3 * t:.1f}" for key, t in cand["median_s"].items())
        gate = "passes the gate" if cand["gate"]["passed"] else f"fails the gate ({cand['gate']['reason']})"
        typer.echo(f"  {'*' if cand['chosen'] else ' '} {name:<17} {times}; {cand['score']:.2f}× the fastest; {gate}")
    for name, why in selection["skipped"].items():
        typer.echo(f"    {name:<17} skipped: {why}")
    typer.echo(f"exported {source} to {result.path} as {selection['chosen']}.")


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)

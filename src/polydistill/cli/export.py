"""``polydistill export``: a model directory → ONNX (fp32 or int8) for deployment, optionally pushed to the Hub."""

from __future__ import annotations

from pathlib import Path

import typer

from polydistill.cli import options as opt
from polydistill.errors import PolydistillError

FORMATS = ("onnx",)


def export(
    model: str | None = opt.MODEL_ARGUMENT,
    model_option: str | None = opt.MODEL_OPTION,
    out: Path = opt.OUT,
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    quantize: str = typer.Option(
        "int8", "--quantize", "-q",
        help="int8: dynamic int8 (static with --calibration-data) | none: fp32."),
    calibration_data: str | None = typer.Option(
        None, "--calibration-data", "--dataset", "-d", "--data",
        help="Dataset whose train examples calibrate static int8 (massive | tsm | universal-ner | a directory); "
        "without it int8 is dynamic."),
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
    """Export a model directory (sequence / token classifier or bare encoder) to ONNX, fp32 or int8.

    The output holds model.onnx (int8 when quantised), config.json, the tokenizer, polydistill.json
    with an export record, and a model card; onnxruntime, polydistill evaluate and polydistill bench load it."""
    from polydistill.export.convert import export_model
    from polydistill.io import check_output_dir

    opt.set_threads(threads)
    source = opt.one_model(model, model_option)
    if format not in FORMATS:
        raise PolydistillError(f"Unknown export format {format!r}; choose {', '.join(FORMATS)}.")
    check_output_dir(out, overwrite)  # before the data and the model load
    data = None
    if calibration_data is not None:
        from polydistill.data import load_task_data

        data = load_task_data(calibration_data, languages, data_root=data_root, seed=seed, purpose="evaluate")
    result = export_model(source, out, quantize=quantize, calibration_data=data, calibration_examples=calibration_examples,
                          calibration_max_length=max_length, seed=seed, opset=opset, exporter=exporter,
                          per_channel=per_channel, overwrite=overwrite, push_to_hub=push_to_hub)
    record, check = result.record, result.record["check"]
    agreement = (f"argmax agreement {100 * check['argmax_agreement']:.1f}%" if "argmax_agreement" in check
                 else f"min cosine {check['min_cosine']:.4f}")
    typer.echo(f"exported {source} to {result.path / record['file']} ({record['quantization']}, opset {record['opset']}, "
               f"{record['onnx_bytes'] / 1e6:.1f} MB; fp32 ONNX {record['onnx_fp32_bytes'] / 1e6:.1f} MB); vs PyTorch "
               f"on {check['sentences']} sentences: max |diff| {check['max_abs_diff']:.2g}, {agreement}.")
    if push_to_hub:
        typer.echo(f"pushed to the Hub: {push_to_hub}")


def register(app: typer.Typer) -> None:
    app.command(name="export")(export)

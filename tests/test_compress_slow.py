"""``polydistill compress`` on the real multilingual e5 fixture and the real tsm data, with a tiny budget: a
teacher fine-tuned here for 20 steps on 1 % of tsm English, compressed for English (French reported as
unseen) with --max-steps 10 and tiny test caps. Outputs exist; the report's numbers are those of
evaluate_model / bench_models run separately on the same final models.

Run with ``python -m pytest -m slow tests/test_compress_slow.py`` (needs ~/.cache/polydistill/e5-small
and ../shared/data)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def e5_teacher(e5_dir, shared_data, tmp_path_factory):
    from polydistill.data.load import load_task_data
    from polydistill.distill.finetune import finetune
    from polydistill.distill.settings import TrainSettings

    data = load_task_data("tsm", languages="english", data_root=shared_data, fraction=0.01, seed=0)
    out = tmp_path_factory.mktemp("compress-e5") / "teacher"
    finetune(str(e5_dir), data, TrainSettings(output_dir=out, max_steps=20, eval_steps=10, batch_size=8,
                                              learning_rate=2e-4, max_length=64, freeze_word_embeddings=True,
                                              logging_steps=10, progress=False))
    return out


def test_compress_e5_end_to_end_with_a_tiny_budget(e5_teacher, shared_data, tmp_path):
    from polydistill.bench.measure import bench_models
    from polydistill.compress import compress
    from polydistill.evaluate import evaluate_model

    out = tmp_path / "cz"
    result = compress(teacher=str(e5_teacher), dataset="tsm", data_root=str(shared_data), languages="english",
                      unseen_languages=["french"], out=out, size="small", wordfreq_words=5000,
                      training={"max_steps": 10, "eval_steps": 5, "batch_size": 8, "max_length": 64},
                      max_dev_per_language=40, max_test_per_language=40, calibration_size=32, bench_lengths=[32],
                      bench_repeats=1, bootstrap_resamples=200, allow_weak_teacher=True)
    for path in (result.model_dir / "model.safetensors", result.int8_dir / "model.onnx", out / "report.md",
                 out / "report.json", out / "plots" / "tradeoff.png", out / "plots" / "f1_per_language.png"):
        assert path.is_file() and path.stat().st_size > 0, path
    report = json.loads((out / "report.json").read_text())
    assert report["architecture"]["name"] == "6L-h192-ffn768-12x16"  # small: half depth, half width, heads kept
    assert report["languages"] == {"kd": ["english"], "seen": ["english"], "unseen": ["french"]}
    vocab = result.stages["vocab"]["summary"]
    assert vocab["vocab_after"] < vocab["vocab_before"]
    assert result.stages["kd"]["summary"]["global_step"] == 10

    quality = report["quality"]
    for name, path in (("teacher", e5_teacher), ("kd", result.model_dir), ("int8", result.int8_dir)):
        separate = evaluate_model(str(path), None, result.test_data, split="test", max_length=64, seen=["english"])
        for lang in ("english", "french"):
            assert quality["models"][name]["per_language"][lang] == pytest.approx(separate.per_language[lang]["f1"])
    separate = bench_models([str(e5_teacher), result.model_dir, result.int8_dir], names=["teacher", "kd", "int8"],
                            lengths=[32], batch_size=32, repeats=1, threads=1, device="cpu")
    for model in separate.models:
        mine = report["speed"]["models"][model.name]
        assert mine["params"] == model.params.total and mine["weights_bytes"] == model.weights_bytes
        ratio = separate.ratios[model.name]["speedup"]["wall"]["cpu/b32/L32"]
        assert 0.33 < mine["throughput_speedup"] / ratio < 3
    assert report["speed"]["models"]["int8"]["params_ratio"] < 0.5  # vocabulary and width both shrink

"""Vocabulary-reduction time and size: ``polydistill vocab reduce`` on e5 with one language's corpus.

The corpus is the MASSIVE sw-KE *train* utterances (11,514 sentences), written one per line; the
*test* utterances are the held-out text of the coverage report. Each model in ``--model`` is reduced by
the real CLI (timed as a user sees it, process start included), then loaded again to count parameters
with the same code as ``polydistill bench``; the plan's coverage report (``--report``) is kept with the
result. The target (issue 7): a vocabulary-reduced e5-small for one language has ≤ 40 % of the original
parameters. ``--wordfreq`` adds the language's word list (not for sw: wordfreq has none).

    python benchmarks/vocab_reduce.py --threads 1 [--locale nl-NL --wordfreq]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from polydistill.architectures import count_parameters
from polydistill.bench.measure import disk_size, machine_info
from polydistill.io import atomic_write_json, atomic_write_text, package_versions
from polydistill.modeling import load_model

E5 = Path.home() / ".cache/polydistill/e5-small"
WORK = Path.home() / ".cache/polydistill/bench"
MASSIVE = Path("/work/shared/data/massive/data")
TARGET = 0.40


def write_corpus(locale: str, out: Path, partition: str = "train") -> int:
    source = MASSIVE / f"{locale}.jsonl.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = [row["utt"] for row in map(json.loads, handle) if row["partition"] == partition]
    atomic_write_text(out, "\n".join(lines) + "\n")
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append",
                        help="model directory to reduce (repeatable); default: e5 and the 6-layer student")
    parser.add_argument("--locale", default="sw-KE")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/vocab_reduce.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wordfreq", action="store_true", help="add the locale's wordfreq list as a source")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.model or [E5, args.work / "e5-6L"]
    corpus = args.work / f"{args.locale}.train.txt"
    n_sentences = write_corpus(args.locale, corpus)
    heldout = args.work / f"{args.locale}.test.txt"
    write_corpus(args.locale, heldout, "test")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}

    rows = {}
    for model_dir in models:
        if not (model_dir / "config.json").is_file():
            print(f"skipping {model_dir}: not built yet")
            continue
        out = args.work / f"{model_dir.name}-{args.locale.split('-')[0]}"
        plan = out.with_name(out.name + ".plan.json")
        command = [sys.executable, "-m", "polydistill", "vocab", "reduce", "--model", str(model_dir),
                   "--corpus", str(corpus), "--heldout", str(heldout), "--report", str(plan),
                   "--out", str(out), "--overwrite", *(["--wordfreq", args.locale] if args.wordfreq else [])]
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        seconds = time.perf_counter() - start
        model_before, model_after = load_model(model_dir), load_model(out)
        before, after = count_parameters(model_before), count_parameters(model_after)
        (disk_before, _), (disk_after, _) = disk_size(model_dir), disk_size(out)
        fraction = after.total / before.total
        rows[model_dir.name] = {
            "reduced": str(out),
            "command": " ".join(["polydistill", *command[3:]]),
            "seconds": seconds,
            "vocab_before": model_before.config.vocab_size,
            "vocab_after": model_after.config.vocab_size,
            "params_before": vars(before),
            "params_after": vars(after),
            "params_fraction": fraction,
            "disk_before": disk_before,
            "disk_after": disk_after,
            "disk_fraction": disk_after / disk_before,
            "target": f"<= {TARGET:.0%} of the original parameters" if model_dir == E5 else None,
            "met": fraction <= TARGET if model_dir == E5 else None,
            "coverage": json.loads(plan.read_text())["languages"],
        }
        print(f"{model_dir.name} -> {out.name}: {seconds:.1f} s, params {before.total / 1e6:.1f} M -> "
              f"{after.total / 1e6:.1f} M ({fraction:.1%}), disk {disk_before / 1e6:.0f} -> {disk_after / 1e6:.0f} MB")
    atomic_write_json(args.out, {
        "command": f"python benchmarks/vocab_reduce.py --threads {args.threads} --locale {args.locale}"
                   + (" --wordfreq" if args.wordfreq else ""),
        "corpus": {"path": str(corpus), "source": f"MASSIVE 1.1 {args.locale} train utt", "sentences": n_sentences},
        "models": rows,
        "machine": machine_info(),
        "versions": package_versions(),
    })
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

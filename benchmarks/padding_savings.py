"""How many padded tokens length bucketing saves (``--group-by-length``: transformers'
LengthGroupedSampler) on MASSIVE, tsm and Universal NER with the e5 tokenizer, batch 32: padded
tokens per epoch with random batches vs length-grouped batches (the same seed), and the share of
real tokens. Pure counting: no model runs.

    python benchmarks/padding_savings.py --out benchmarks/results/padding_savings.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

E5 = Path.home() / ".cache/polydistill/e5-small"
DATA_ROOT = Path(__file__).resolve().parents[2] / "shared/data"
SETS = {"massive": ("seen", 0.02, 32), "tsm": ("all", 0.3, 64), "universal-ner": ("seen", 0.3, 48)}


def padded(lengths: list[int], order: list[int], batch: int) -> tuple[int, int]:
    real = total = 0
    for start in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[start:start + batch]]
        real += sum(chunk)
        total += max(chunk) * len(chunk)
    return real, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/padding_savings.json"))
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from polydistill.data import load_task_data
    from polydistill.data.tokenize import tokenize_task_data
    from polydistill.io import atomic_write_json

    tokenizer = AutoTokenizer.from_pretrained(str(E5))
    rows = {}
    for name, (languages, fraction, max_length) in SETS.items():
        data = load_task_data(name, languages=languages, data_root=DATA_ROOT, fraction=fraction, seed=0)
        train = tokenize_task_data(data, tokenizer, max_length=max_length)["train"]
        lengths = [len(ids) for ids in train["input_ids"]]
        generator = torch.Generator().manual_seed(0)
        random_order = torch.randperm(len(lengths), generator=generator).tolist()
        grouped = list(LengthGroupedSampler(args.batch_size, lengths=lengths, generator=torch.Generator().manual_seed(0)))
        real, random_total = padded(lengths, random_order, args.batch_size)
        _, grouped_total = padded(lengths, grouped, args.batch_size)
        rows[name] = {"examples": len(lengths), "max_length": max_length, "real_tokens": real,
                      "tokens_random": random_total, "tokens_grouped": grouped_total,
                      "real_share_random": round(real / random_total, 3),
                      "real_share_grouped": round(real / grouped_total, 3),
                      "tokens_saved": round(1 - grouped_total / random_total, 3)}
        print(name, rows[name], flush=True)
    atomic_write_json(args.out, {"batch_size": args.batch_size, "tokenizer": str(E5), "rows": rows})


if __name__ == "__main__":
    main()

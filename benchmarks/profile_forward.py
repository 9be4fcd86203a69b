"""Where a forward pass spends its time: per-module shares and the top operators (torch.profiler).

Explains the speed ratios of ``polydistill bench``: halving the layers halves only the encoder's share,
so the speed-up is bounded by 1 / (share_other + share_encoder / 2); a narrower model is bounded by
how well small matrix products and many small attention heads use the CPU.

    python benchmarks/profile_forward.py --model ~/.cache/polydistill/e5-small --batch-size 32 --length 128
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from polydistill.io import atomic_write_text
from polydistill.modeling import load_model


def module_shares(model, inputs, repeats: int, clock) -> dict[str, float]:
    """Median forward time and, per run, the share of embeddings, encoder layers, pooler and the rest.

    Shares are computed inside each run and then the median taken, so that a preemption in one run
    (this machine is shared) does not make the parts stop adding up to the whole.
    """
    backbone = model.base_model
    parts = {"embeddings": backbone.embeddings}
    parts.update({f"layer {i}": layer for i, layer in enumerate(backbone.encoder.layer)})
    if getattr(backbone, "pooler", None) is not None:
        parts["pooler"] = backbone.pooler
    starts, spent = {}, {}
    for name, module in parts.items():
        module.register_forward_pre_hook(lambda m, a, name=name: starts.__setitem__(name, clock()))
        module.register_forward_hook(lambda m, a, o, name=name: spent.__setitem__(name, clock() - starts[name]))
    runs = []
    with torch.inference_mode():
        model(**inputs)  # warm-up
        for _ in range(repeats):
            spent.clear()
            start = clock()
            model(**inputs)
            total = clock() - start
            layers = sum(v for k, v in spent.items() if k.startswith("layer "))
            runs.append({"total": total, "embeddings": spent["embeddings"] / total, "layers": layers / total,
                         "per_layer": layers / (len(parts) - 1 - ("pooler" in parts)),
                         "pooler": spent.get("pooler", 0.0) / total,
                         "rest": 1 - (spent["embeddings"] + layers + spent.get("pooler", 0.0)) / total})
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=12, help="operators shown in the profiler table")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: thread CPU time (steady on a shared machine with --threads 1); wall: elapsed")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default=None,
                        help="attention implementation (default: the model's own, SDPA for BERT)")
    parser.add_argument("--outputs", action="store_true",
                        help="return all attentions and hidden states, as naive KD does (needs --attn eager)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this text file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    lines = [f"# profile: batch {args.batch_size}, length {args.length}, {args.threads} thread(s), "
             f"{args.clock} clock, median of {args.repeats}", ""]
    for path in args.model:
        model = load_model(path).eval()
        if args.attn:
            model.set_attn_implementation(args.attn)
        config = model.config
        ids = torch.randint(5, config.vocab_size, (args.batch_size, args.length), generator=torch.Generator().manual_seed(0))
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if args.outputs:
            inputs.update(output_attentions=True, output_hidden_states=True)
        shares = module_shares(model, inputs, args.repeats, clock)
        lines.append(f"## {path.name} ({config.num_hidden_layers}L, hidden {config.hidden_size}, "
                     f"FFN {config.intermediate_size}, {config.num_attention_heads} heads, vocab {config.vocab_size:,}; "
                     f"attention {config._attn_implementation}{', all attentions + hidden states returned' if args.outputs else ''})")
        lines.append(f"forward {shares['total'] * 1e3:.1f} ms")
        lines.append(f"  encoder layers {shares['layers']:.1%} ({shares['per_layer'] * 1e3:.2f} ms/layer), "
                     f"embeddings {shares['embeddings']:.1%}, pooler {shares['pooler']:.1%}, "
                     f"rest (masks, glue outside the modules) {shares['rest']:.1%}")
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, torch.inference_mode():
            for _ in range(args.repeats):
                model(**inputs)
        lines.append(f"torch.profiler over {args.repeats} forwards:")
        lines.append("```")
        lines.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
        lines.append("```")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Every measurement behind docs/performance.md, in order. Run from the repository root:
#     bash benchmarks/run_all.sh
# THREADS (default 1) is passed to torch.set_num_threads everywhere; REPEATS to polydistill bench.
# Built models go to $WORK (default ~/.cache/polydistill/bench), results to benchmarks/results/.
set -euo pipefail
THREADS=${THREADS:-1}
REPEATS=${REPEATS:-5}
E5=${E5:-$HOME/.cache/polydistill/e5-small}
WORK=${WORK:-$HOME/.cache/polydistill/bench}
RESULTS=benchmarks/results
mkdir -p "$WORK" "$RESULTS"
export TOKENIZERS_PARALLELISM=false

# (b) weight-copy build time: 6 layers, and 6 layers at half width (hidden 192, FFN 768)
python benchmarks/build_time.py --teacher "$E5" --work "$WORK" --threads "$THREADS" --repeats 3

# (c) vocabulary reduction time and size, MASSIVE sw-KE train utterances, on e5 and on the 6-layer student
python benchmarks/vocab_reduce.py --model "$E5" --model "$WORK/e5-6L" --work "$WORK" --threads "$THREADS"

# (a) KD step ratio (script owned by the distillation stage): ours vs the naive way, lengths 32 and 128
if [[ -f benchmarks/kd_step_ratio.py ]]; then
    python benchmarks/kd_step_ratio.py --threads "$THREADS" --repeats 7 --out "$RESULTS/kd_step_ratio.json"
else
    echo "benchmarks/kd_step_ratio.py not present: KD step ratio skipped" >&2
fi

# (d) teacher vs students, interleaved in one process; ratios against the teacher (first model)
polydistill bench --model "$E5" --model "$WORK/e5-6L" --model "$WORK/e5-6L-h192" \
    --model "$WORK/e5-6L-sw" --model "$WORK/e5-small-sw" \
    --threads "$THREADS" --repeats "$REPEATS" --lengths 32,128 --batch-size 32 --device auto \
    --out "$RESULTS/bench.json"

# profiles that explain the ratios (where the time goes inside one forward)
python benchmarks/profile_forward.py --model "$E5" --model "$WORK/e5-6L" --model "$WORK/e5-6L-h192" \
    --threads "$THREADS" --batch-size 32 --length 128 --repeats 3 --out "$RESULTS/profile_b32_L128.md"
python benchmarks/profile_forward.py --model "$E5" --model "$WORK/e5-6L" --model "$WORK/e5-6L-h192" \
    --threads "$THREADS" --batch-size 1 --length 32 --repeats 20 --out "$RESULTS/profile_b1_L32.md"
# what the naive KD forward pays: eager attention returning every attention map and hidden state
python benchmarks/profile_forward.py --model "$E5" --model "$WORK/e5-6L" --attn eager --outputs \
    --threads "$THREADS" --batch-size 32 --length 128 --repeats 3 --out "$RESULTS/profile_eager_b32_L128.md"

# regenerate the measured section of docs/performance.md from benchmarks/results/
python benchmarks/report.py --write docs/performance.md

"""``polydistill demo``: the whole pipeline on the shipped MASSIVE sample, offline, in minutes.

teacher fine-tune → weight-copy student (half depth) → KD → evaluation on seen and unseen locales
→ a table and plots. It is an ordinary experiment grid (:mod:`polydistill.experiments`) run on
``demo/sample``, so the demo exercises exactly the code the paper configs use. With ``compress=True``
(``polydistill demo --compress``) the grid's teacher is then compressed for the sample's locales with
:func:`polydistill.compress.compress` on a tiny budget (:func:`compress_demo`), which writes its report card.

Teacher: ``--teacher DIR_OR_HUB_ID`` if given; otherwise a small BERT encoder is created from scratch
(random weights, a WordPiece tokenizer trained on the sample) so the demo never needs the network.
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from polydistill.errors import PolydistillError
from polydistill.modeling import load_config

SAMPLE_DIR = Path(__file__).parent / "sample"
SEEN = ["en-US", "de-DE", "es-ES", "fr-FR"]
UNSEEN = ["it-IT", "nl-NL"]
REAL_TEACHER_HINT = ("for a real pretrained multilingual teacher run: polydistill demo --teacher "
                     "~/.cache/polydistill/e5-small (or a hub id such as xlm-roberta-base when online)")


@dataclass
class DemoResult:
    out: Path
    teacher: str
    teacher_kind: str  # "pretrained" | "small-encoder"
    table_markdown: str
    files: dict[str, Path]
    seconds: float
    compress: Any = None  # the CompressResult of --compress


def sample_texts(split: str = "train") -> list[str]:
    texts = []
    for locale in SEEN:
        for line in (SAMPLE_DIR / "massive" / "data" / f"{locale}.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["partition"] == split:
                texts.append(record["utt"])
    return texts


def wordpiece_vocab(texts: list[str], normalizer, pre_tokenizer, vocab_size: int, specials: list[str]) -> dict[str, int]:
    """The WordPiece vocabulary ``tokenizers``' ``WordPieceTrainer`` learns (BPE merges over the
    normalised, pre-tokenised words, ``##`` marking a word's continuation), but deterministic: the
    trainer breaks count ties by ids assigned in hash order, so its vocabulary changed from run to run;
    here ties go to the lexicographically smallest pair. Ids: specials, then the characters (word-initial,
    then ``##``), then the merged tokens in merge order, up to ``vocab_size``."""
    counts = Counter(word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    words = [[w[0], *(f"##{c}" for c in w[1:])] for w in sorted(counts)]
    freq = [counts[w] for w in sorted(counts)]
    vocab: dict[str, int] = {}
    alphabet = sorted({piece for word in words for piece in word}, key=lambda t: (t.startswith("##"), t))
    for token in [*specials, *alphabet]:
        vocab.setdefault(token, len(vocab))
    pairs: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, word in enumerate(words):
        for pair in pairwise(word):
            pairs[pair] += freq[i]
            where[pair].add(i)
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative, pair = heapq.heappop(heap)
        if pairs.get(pair, 0) != -negative or not -negative:
            continue  # a stale entry: this pair's count changed since it was pushed
        a, b = pair
        merged = a + b[2:]  # b is a continuation: "##x"
        vocab.setdefault(merged, len(vocab))
        changed: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair)):
            word, n = words[i], freq[i]
            for old in pairwise(word):
                pairs[old] -= n
                changed.add(old)
            out, j = [], 0
            while j < len(word):  # left to right, non-overlapping
                if j + 1 < len(word) and word[j] == a and word[j + 1] == b:
                    out.append(merged)
                    j += 2
                else:
                    out.append(word[j])
                    j += 1
            words[i] = out
            for new in pairwise(out):
                pairs[new] += n
                where[new].add(i)
                changed.add(new)
        for p in changed:
            if pairs[p] > 0:
                heapq.heappush(heap, (-pairs[p], p))
            else:
                pairs.pop(p, None)
    return vocab


def build_small_encoder(out: Path, seed: int = 0) -> Path:
    """A 4-layer BERT (hidden 128) with random weights and a WordPiece vocabulary trained on the
    sample's seen-locale training utterances; written atomically as a HF model directory."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizer

    if (out / "config.json").is_file():
        return out
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab = wordpiece_vocab(sample_texts(), normalizer, pre_tokenizer, vocab_size=2000, specials=specials)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = BertTokenizer(tokenizer_object=tok, model_max_length=64)  # transformers 5: the fast tokenizer
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = BertModel(config)
    from polydistill.student.model_dir import save_model_dir
    from polydistill.student.provenance import Provenance

    with save_model_dir(out, "demo-encoder", model=model, tokenizer=tokenizer, provenance=Provenance(task="base"),
                        overwrite=True, own=True):
        pass  # the demo's cache entry: replaced whatever is there
    return out


QUICK_EPOCHS = 2


def demo_config(teacher: str, teacher_label: str, pretrained: bool, quick: bool = False, precision: str = "auto"):
    """The demo grid: one teacher on the seen locales, from-scratch and from-teacher students with KD.
    ``quick``: QUICK_EPOCHS per stage, a smoke test of the pipeline (the teacher gate is off: two epochs
    need not make a teacher worth distilling)."""
    from polydistill.experiments.schema import parse_config

    # a random-init encoder needs a larger learning rate and more epochs than a pretrained one
    t_epochs, t_lr = (6, 2e-4) if pretrained else (15, 1e-3)
    s_epochs, s_lr = (6, 2e-4) if pretrained else (10, 1e-3)
    if quick:
        t_epochs = s_epochs = QUICK_EPOCHS
    training = {"batch_size": 32, "eval_batch_size": 64, "max_length": 32, "logging_steps": 4,
                "precision": precision}
    return parse_config({
        "name": "demo",
        "description": "polydistill demo on the shipped MASSIVE sample",
        "data_root": str(SAMPLE_DIR),
        "teachers": [{"name": teacher_label, "model": teacher, "train_languages": SEEN}],
        "datasets": [{"name": "massive"}],
        "eval_languages": {"seen": SEEN, "unseen": UNSEEN},
        "seeds": [0],
        "students": {"inits": ["from-scratch", "from-teacher"], "kd": [True], "layers": [None]},
        "teacher_training": {**training, "epochs": t_epochs, "learning_rate": t_lr,
                             "freeze_word_embeddings": pretrained},
        "student_training": {**training, "epochs": s_epochs, "learning_rate": s_lr,
                             "freeze_word_embeddings": pretrained},
        "teacher_gate_margin": None if quick else 0.05,
        "keep_student_models": True,  # the demo's end product: students with their cards, under grid/runs/
    }, source="demo config")


def _teacher_label(teacher: str) -> str:
    name = Path(teacher).name if Path(teacher).expanduser().exists() else teacher.split("/")[-1]
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "teacher"


def run_demo(
    teacher: str | None = None,
    out: str | Path = "polydistill-demo",
    say: Callable[[str], None] = print,
    on_event=None,
    quick: bool = False,
    precision: str = "auto",
    compress: bool = False,
    on_compress_event=None,
) -> DemoResult:
    """Run the demo grid into ``out`` (resumable like any grid) and write its report; with ``compress``,
    compress its teacher afterwards (:func:`compress_demo`)."""
    from polydistill.experiments.report import write_report
    from polydistill.experiments.runner import run_grid
    from polydistill.experiments.schema import expand_path

    start = time.time()
    out = Path(out)
    if teacher:
        source = expand_path(teacher)
        load_config(source)  # a clear error now if the directory / hub id is not reachable
        kind, label = "pretrained", _teacher_label(source)
        say(f"teacher: {source} (given with --teacher), fine-tuned on the sample's seen locales")
    else:
        source = str(build_small_encoder(out / "small-encoder"))
        kind, label = "small-encoder", "small-encoder"
        say("teacher: no pretrained teacher given, so a small 4-layer encoder (hidden 128, WordPiece vocabulary "
            "trained on the sample) is trained from scratch on the sample; expect modest scores, near chance on "
            "the unseen locales.")
        say(REAL_TEACHER_HINT)
    say(f"data: shipped MASSIVE 1.1 sample (CC BY 4.0), seen {' '.join(SEEN)}, unseen {' '.join(UNSEEN)}, 8 intents")
    config = demo_config(source, label, pretrained=kind == "pretrained", quick=quick, precision=precision)
    run_grid(config, out / "grid", on_event=on_event)
    files = write_report(out / "grid", out, title=f"polydistill demo (teacher: {label})")
    table = Path(files["markdown"]).read_text(encoding="utf-8")
    result = DemoResult(out=out, teacher=source, teacher_kind=kind, table_markdown=table, files=files,
                        seconds=time.time() - start)
    if compress:
        result.compress = compress_demo(out, quick=quick, precision=precision, say=say, on_event=on_compress_event)
        result.seconds = time.time() - start
    return result


COMPRESS_BUDGET_MINUTES = {True: 0.5, False: 2.0}  # the KD budget of --compress (quick / not)


def demo_teacher_dir(out: str | Path) -> Path:
    """The fine-tuned teacher of the demo grid in ``out`` (run the demo first)."""
    from polydistill.experiments.store import open_store

    store = open_store(Path(out) / "grid", must_exist=True)
    dirs = [Path(r["model_dir"]) for r in store.records() if r.get("model_dir") and r["spec"]["kind"] == "teacher"]
    if not dirs or not (dirs[0] / "config.json").is_file():
        raise PolydistillError(f"The demo grid in {out} has no fine-tuned teacher yet; run polydistill demo first.")
    return dirs[0]


def compress_demo(out: str | Path, quick: bool = False, precision: str = "auto", say: Callable[[str], None] = print,
                  on_event=None):
    """``polydistill compress`` of the demo grid's teacher for the sample's locales (KD on the seen ones,
    the unseen ones reported apart), ``small`` preset, a KD budget of ``COMPRESS_BUDGET_MINUTES``, into
    ``out/compress``. The sample's unseen locales have no validation text, so the vocabulary uses the
    threshold rule (the report says so). Weak-teacher gate off: the grid judged its teacher already."""
    from polydistill.compress import compress

    teacher = demo_teacher_dir(out)
    say(f"compress: the demo teacher {teacher} → a small student for {' '.join(SEEN)} (unseen {' '.join(UNSEEN)}), "
        f"KD budget {COMPRESS_BUDGET_MINUTES[quick]:g} min")
    return compress(teacher=str(teacher), dataset="massive", data_root=str(SAMPLE_DIR), languages=SEEN,
                    unseen_languages=UNSEEN, out=Path(out) / "compress", size="small",
                    budget_minutes=COMPRESS_BUDGET_MINUTES[quick],
                    training={"max_length": 32, "batch_size": 32, "precision": precision},
                    bench_lengths=[16, 32], bench_repeats=3, bootstrap_resamples=500, allow_weak_teacher=True,
                    on_event=on_event, say=None if on_event is not None else say)  # events show the notes


def check_sample() -> None:
    if not (SAMPLE_DIR / "massive" / "data" / "en-US.jsonl").is_file():
        raise PolydistillError(f"The demo sample is missing at {SAMPLE_DIR}; reinstall polydistill.")

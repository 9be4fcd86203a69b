"""VocabReduce (seed 004 §5): keep only the sub-words a language needs, for any tokenizer model.

A multilingual vocabulary dominates the parameter count of small encoders (multilingual-e5-small keeps
~96M of its 118M parameters in a 250k-row embedding). We tokenise a corpus of the target language, keep
the sub-words that occur in at least ``min_sentence_freq`` of its sentences, and rebuild

* the fast tokenizer, by editing ``tokenizer.json`` so the kept pieces get contiguous ids 0..n-1 in their
  old order (WordPiece vocab dict re-numbered, Unigram piece list filtered with its scores, BPE vocab and
  merges filtered; added tokens and post-processor special ids remapped);
* every vocabulary-sized tensor of the model (input embedding rows, an MLM decoder and its bias), sliced
  with the same old→new id map, so the kept rows are bit-identical.

What is always kept, so that any input still tokenises (the fallback contract, tested):

* all special and added tokens, and the unk token;
* **Unigram (SentencePiece: XLM-R, e5, mDeBERTa)**: every single-character piece of a character that
  occurs in the (normalised) corpus, and the Metaspace ``▁`` piece. A word whose longer pieces were removed
  is re-segmented by Viterbi into the best remaining pieces (ultimately single characters). A character
  with no single-character piece becomes ``<unk>`` (one ``<unk>`` per run of unknown characters, as the
  original tokenizer does); with ``byte_fallback`` tokenizers the 256 ``<0xXX>`` pieces are kept instead.
* **WordPiece (mBERT)**: for every corpus character ``c`` both ``c`` and ``##c`` (when the original has
  them). WordPiece is greedy longest-match-first and maps a *whole word* to ``[UNK]`` when it cannot cover
  it, so without the characters a word whose pieces were removed would become ``[UNK]``. With them it is
  split into the longest remaining pieces (down to characters); only a word containing a character that
  was never seen in the corpus (and so has no kept piece) becomes one ``[UNK]`` — exactly the original
  rule, applied to the smaller vocabulary.
* **BPE**: every token in the merge derivation of a kept token (else the kept token is unreachable), the
  byte-level alphabet for byte-level BPE, and only merges whose parts and result are all kept.

On text whose tokens were all kept the reduced tokenizer produces the same pieces (Viterbi's best path
and greedy longest-match are unchanged when only unused pieces disappear), hence after the id map the
same ids and the same model outputs.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydistill.architectures import count_parameters
from polydistill.errors import PolydistillError, require
from polydistill.io import (
    CARD_FILE,
    PROVENANCE_FILE,
    WEIGHT_SUFFIXES,
    atomic_output_dir,
    atomic_write_text,
    check_output_dir,
    package_versions,
)
from polydistill.student.provenance import Provenance, read_provenance, write_provenance

# Files describing the old vocabulary that would contradict the rebuilt tokenizer.json.
_STALE_TOKENIZER_FILES = ("vocab.txt", "sentencepiece.bpe.model", "spm.model", "tokenizer.model", "vocab.json",
                          "merges.txt", "added_tokens.json")
_BYTE_LEVEL_ALPHABET_SIZE = 256


@dataclass
class VocabPlan:
    """Which old ids survive; new id i is ``kept_ids[i]`` (old order kept, so ids are contiguous)."""

    model_type: str
    old_size: int
    kept_ids: list[int]
    n_sentences: int
    min_count: int
    reasons: dict[str, int] = field(default_factory=dict)  # kept tokens by reason (frequent, special, ...)

    @property
    def old_to_new(self) -> dict[int, int]:
        return {old: new for new, old in enumerate(self.kept_ids)}

    @property
    def new_size(self) -> int:
        return len(self.kept_ids)


@dataclass
class VocabReduction:
    model: Any
    tokenizer: Any
    plan: VocabPlan
    provenance: dict
    path: Path | None = None


# --------------------------------------------------------------------------------------------- counting
def _backend_json(tokenizer) -> dict:
    require(
        getattr(tokenizer, "is_fast", False) and hasattr(tokenizer, "backend_tokenizer"),
        "VocabReduce needs a fast tokenizer (tokenizer.json); save the model with a fast tokenizer first.",
    )
    return json.loads(tokenizer.backend_tokenizer.to_str())


def sentence_frequencies(tokenizer, sentences: Iterable[str], batch_size: int = 1000) -> tuple[Counter, int, set]:
    """Per token id, in how many sentences it occurs; the sentence count; the set of normalised characters."""
    counts: Counter = Counter()
    chars: set[str] = set()
    normalizer = tokenizer.backend_tokenizer.normalizer
    n = 0
    batch: list[str] = []

    def flush():
        nonlocal n
        enc = tokenizer(batch, add_special_tokens=False)["input_ids"]
        for ids in enc:
            counts.update(set(ids))
        for text in batch:
            chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
        n += len(batch)
        batch.clear()

    for sentence in sentences:
        sentence = sentence.strip()
        if sentence:
            batch.append(sentence)
            if len(batch) >= batch_size:
                flush()
    if batch:
        flush()
    require(n > 0, "The corpus is empty; pass --corpus files with one sentence per line or a --dataset.")
    chars.discard(" ")
    return counts, n, chars


# --------------------------------------------------------------------------------------------- planning
def _model_vocab(model_json: dict) -> list[str]:
    """Model-vocabulary pieces indexed by id."""
    kind = model_json["type"]
    if kind == "Unigram":
        return [piece for piece, _ in model_json["vocab"]]
    if kind in ("WordPiece", "BPE"):
        vocab = model_json["vocab"]
        pieces = [None] * len(vocab)
        for piece, idx in vocab.items():
            require(idx < len(vocab), f"The {kind} vocabulary has non-contiguous ids; it cannot be reduced safely.")
            pieces[idx] = piece
        return pieces
    raise PolydistillError(
        f"VocabReduce supports WordPiece, Unigram (SentencePiece) and BPE tokenizers, not {kind}."
    )


def _merge_pairs(model_json: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model_json.get("merges", [])]


def plan_reduction(
    tokenizer,
    counts: Counter,
    n_sentences: int,
    chars: set[str],
    min_sentence_freq: float = 0.0005,
    max_tokens: int | None = None,
) -> VocabPlan:
    """Decide the kept ids: frequent pieces (capped by ``max_tokens``) plus everything the fallback needs."""
    require(0.0 <= min_sentence_freq <= 1.0, f"--min-sentence-freq must be a fraction in [0, 1], not {min_sentence_freq}.")
    require(max_tokens is None or max_tokens > 0, f"--max-tokens must be positive, not {max_tokens}.")
    backend = _backend_json(tokenizer)
    model_json = backend["model"]
    kind = model_json["type"]
    pieces = _model_vocab(model_json)
    piece_id = {p: i for i, p in enumerate(pieces)}
    added = {t["id"]: t["content"] for t in backend.get("added_tokens", [])}
    old_size = max([len(pieces) - 1, *added]) + 1
    require(
        set(range(len(pieces), old_size)) <= set(added),
        "The tokenizer's added tokens leave gaps after the model vocabulary; it cannot be reduced safely.",
    )
    # A piece must occur in at least this many sentences (and in one at least).
    min_count = max(1, math.ceil(min_sentence_freq * n_sentences - 1e-9))
    frequent = sorted((i for i, c in counts.items() if c >= min_count), key=lambda i: (-counts[i], i))
    if max_tokens is not None:
        frequent = frequent[:max_tokens]

    reasons: dict[str, set[int]] = {"frequent": set(frequent)}
    reasons["special"] = set(added) | set(tokenizer.all_special_ids)
    unk = tokenizer.unk_token_id
    if unk is not None:
        reasons["special"].add(unk)
    fallback: set[int] = set()
    if kind == "Unigram":
        if model_json.get("byte_fallback"):
            fallback |= {piece_id[f"<0x{b:02X}>"] for b in range(256) if f"<0x{b:02X}>" in piece_id}
        for c in chars | {"\u2581"}:
            if c in piece_id:
                fallback.add(piece_id[c])
    elif kind == "WordPiece":
        prefix = model_json.get("continuing_subword_prefix", "##")
        for c in chars:
            for piece in (c, prefix + c):
                if piece in piece_id:
                    fallback.add(piece_id[piece])
    elif kind == "BPE":
        fallback |= _bpe_alphabet(backend, piece_id, chars)
    reasons["character fallback"] = fallback - reasons["special"] - reasons["frequent"]

    kept = reasons["frequent"] | reasons["special"] | fallback
    if kind == "BPE":
        closure = _bpe_closure(kept, pieces, piece_id, _merge_pairs(model_json))
        reasons["merge derivation"] = closure - kept
        kept |= closure
    kept_ids = sorted(i for i in kept if i < old_size)
    return VocabPlan(
        model_type=kind,
        old_size=old_size,
        kept_ids=kept_ids,
        n_sentences=n_sentences,
        min_count=min_count,
        reasons={k: len(v) for k, v in reasons.items()},
    )


def _bpe_alphabet(backend: dict, piece_id: dict[str, int], chars: set[str]) -> set[int]:
    """Byte-level BPE needs its whole 256-symbol alphabet; character BPE the corpus characters."""
    def is_byte_level(node) -> bool:
        if not isinstance(node, dict):
            return False
        if node.get("type") == "ByteLevel":
            return True
        return any(is_byte_level(n) for n in node.get("pretokenizers", []) + node.get("processors", []))

    if is_byte_level(backend.get("pre_tokenizer")):
        from tokenizers.pre_tokenizers import ByteLevel

        alphabet = ByteLevel.alphabet()
        require(len(alphabet) == _BYTE_LEVEL_ALPHABET_SIZE, "Unexpected byte-level alphabet size.")
        return {piece_id[c] for c in alphabet if c in piece_id}
    suffix = backend["model"].get("end_of_word_suffix") or ""
    prefix = backend["model"].get("continuing_subword_prefix") or ""
    out = set()
    for c in chars:
        for piece in (c, prefix + c, c + suffix):
            if piece in piece_id:
                out.add(piece_id[piece])
    return out


def _bpe_closure(kept: set[int], pieces: list[str], piece_id: dict[str, int], merges) -> set[int]:
    """All tokens on the merge paths that build the kept tokens (a BPE token is reachable only through them)."""
    parents = {}
    for a, b in merges:
        parents.setdefault(a + b, (a, b))
    out, stack = set(kept), [pieces[i] for i in kept if i < len(pieces)]
    while stack:
        piece = stack.pop()
        for part in parents.get(piece, ()):
            pid = piece_id.get(part)
            if pid is not None and pid not in out:
                out.add(pid)
                stack.append(part)
    return out


# ------------------------------------------------------------------------------------- rebuilding parts
def _remap_post_processor(node, old_to_new: dict[int, int]):
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "TemplateProcessing":
        for spec in node.get("special_tokens", {}).values():
            spec["ids"] = [old_to_new[i] for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, idx = node[key]
            node[key] = [token, old_to_new[idx]]
    elif kind == "Sequence":
        node["processors"] = [_remap_post_processor(p, old_to_new) for p in node.get("processors", [])]
    return node


def reduce_tokenizer_json(backend: dict, plan: VocabPlan) -> dict:
    """The tokenizer.json with only the kept pieces, re-numbered contiguously."""
    backend = json.loads(json.dumps(backend))  # deep copy
    old_to_new = plan.old_to_new
    model_json = backend["model"]
    kind = model_json["type"]
    pieces = _model_vocab(model_json)
    kept_model = [i for i in plan.kept_ids if i < len(pieces)]
    if kind == "Unigram":
        model_json["vocab"] = [model_json["vocab"][i] for i in kept_model]
        if model_json.get("unk_id") is not None:
            model_json["unk_id"] = old_to_new[model_json["unk_id"]]
    elif kind == "WordPiece":
        model_json["vocab"] = {pieces[i]: old_to_new[i] for i in kept_model}
    elif kind == "BPE":
        model_json["vocab"] = {pieces[i]: old_to_new[i] for i in kept_model}
        kept_pieces = set(model_json["vocab"])
        merges = model_json.get("merges", [])
        model_json["merges"] = [
            m for m, (a, b) in zip(merges, _merge_pairs(model_json), strict=True)
            if a in kept_pieces and b in kept_pieces and a + b in kept_pieces
        ]
    for token in backend.get("added_tokens", []):
        token["id"] = old_to_new[token["id"]]
    backend["post_processor"] = _remap_post_processor(backend.get("post_processor"), old_to_new)
    return backend


def _model_class(config):
    """The class named in config.architectures (any head), else the bare AutoModel."""
    import transformers

    for name in config.architectures or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


def reduce_model(model, plan: VocabPlan):
    """A new model of the same class whose vocabulary-sized tensors keep only ``plan.kept_ids`` rows."""
    import torch

    old_rows = model.get_input_embeddings().weight.shape[0]
    require(
        old_rows >= plan.old_size,
        f"The model's embedding has {old_rows} rows but the tokenizer has {plan.old_size} tokens; "
        "they do not belong together.",
    )
    index = torch.tensor(plan.kept_ids, dtype=torch.long)
    state = {}
    for name, tensor in model.state_dict().items():
        # Every tensor with one row per vocabulary entry: word embeddings, MLM decoder weight and bias.
        state[name] = tensor.index_select(0, index).clone() if tensor.ndim >= 1 and tensor.shape[0] == old_rows else tensor
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.vocab_size = plan.new_size
    old_to_new = plan.old_to_new
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                "mask_token_id", "unk_token_id", "decoder_start_token_id"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            setattr(config, key, old_to_new.get(value))
    new = model.__class__(config)
    missing, unexpected = new.load_state_dict(state, strict=False)
    require(not missing and not unexpected,
            f"Weights did not match while rebuilding the reduced model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}).")
    new.tie_weights()
    new.to(next(model.parameters()).dtype)
    new.eval()
    return new


# ---------------------------------------------------------------------------------------------- driver
def _save_tokenizer(tokenizer, backend: dict, out: Path):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(out)
    for name in _STALE_TOKENIZER_FILES:
        (out / name).unlink(missing_ok=True)
    Tokenizer.from_str(json.dumps(backend)).save(str(out / "tokenizer.json"))
    return AutoTokenizer.from_pretrained(out)


def build_reduced_tokenizer(tokenizer, plan: VocabPlan):
    """The reduced tokenizer as a loaded HF fast tokenizer (written to and read back from a temp dir)."""
    import tempfile

    backend = reduce_tokenizer_json(_backend_json(tokenizer), plan)
    with tempfile.TemporaryDirectory() as tmp:
        return _save_tokenizer(tokenizer, backend, Path(tmp))


def _copy_extras(src: Path, dst: Path) -> None:
    """Keep files that describe how to use the model (e.g. sentence-transformers pooling), not weights."""
    skip = {"config.json", CARD_FILE, PROVENANCE_FILE, "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "generation_config.json", *_STALE_TOKENIZER_FILES}
    for item in src.iterdir():
        if item.name in skip or item.name.startswith(".") or item.name.endswith(WEIGHT_SUFFIXES) \
                or item.name.endswith(".index.json") or (dst / item.name).exists():
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name)
        else:
            shutil.copy2(item, dst / item.name)


def _model_card(source: str, record: dict, previous_card: str | None) -> str:
    lines = [
        "---", "library_name: transformers", "tags: [polydistill, vocab-reduce]", "---", "",
        f"# Vocabulary-reduced {Path(source).name}", "",
        f"Made with `polydistill vocab reduce` (VocabReduce, Singh et al. 2023 §5) from `{source}`.", "",
        "| | before | after |", "|---|---|---|",
        f"| vocabulary | {record['vocab_before']:,} | {record['vocab_after']:,} |",
        f"| parameters | {record['params_before']:,} | {record['params_after']:,} |",
        f"| embedding parameters | {record['embedding_params_before']:,} | {record['embedding_params_after']:,} |",
        "",
        f"- corpus: {record['corpus']['description']} ({record['corpus']['sentences']:,} sentences)",
        f"- kept a sub-word if it occurs in ≥ {record['min_sentence_freq']} of the sentences "
        f"(≥ {record['min_sentence_count']} sentences)" + (f", at most {record['max_tokens']} of them"
                                                           if record["max_tokens"] else ""),
        f"- kept tokens by reason: {record['kept_by_reason']}; removed: {record['removed']:,}",
        f"- tokenizer model: {record['tokenizer_model']}; fallback: {record['fallback']}",
        "",
        "Text of the corpus language tokenises to the same pieces as before (ids are re-numbered "
        "contiguously); other text falls back to smaller pieces or the unk token. Provenance: "
        f"`{PROVENANCE_FILE}`.",
    ]
    if previous_card:
        lines += ["", "## Earlier model card", "", previous_card.split("---", 2)[-1].strip()]
    return "\n".join(lines) + "\n"


FALLBACK_DOC = {
    "Unigram": "words with removed pieces are re-segmented (Viterbi) into kept pieces down to the corpus' single "
               "characters; other characters become <unk>",
    "WordPiece": "words with removed pieces are split greedily into kept pieces down to the corpus' characters "
                 "(c and ##c); a word containing an unseen character becomes a single [UNK]",
    "BPE": "merges whose tokens were removed are dropped, so words fall back to shorter kept tokens down to "
           "the (byte-level) alphabet",
}


def vocab_reduce(
    model_dir: str | Path,
    sentences: Sequence[str] | Iterable[str],
    out: str | Path | None = None,
    *,
    min_sentence_freq: float = 0.0005,
    max_tokens: int | None = None,
    corpus_description: str = "custom corpus",
    overwrite: bool = False,
) -> VocabReduction:
    """Reduce the vocabulary of the model in ``model_dir`` to what ``sentences`` need; save to ``out``."""
    from polydistill.modeling import load_config, load_tokenizer

    start = time.time()
    if out is not None:
        check_output_dir(out, overwrite)  # refuse before the slow work
    model_dir = Path(model_dir)
    config = load_config(model_dir)
    tokenizer = load_tokenizer(model_dir)
    backend = _backend_json(tokenizer)
    counts, n, chars = sentence_frequencies(tokenizer, sentences)
    plan = plan_reduction(tokenizer, counts, n, chars, min_sentence_freq, max_tokens)
    cls = _model_class(config)
    try:
        model = cls.from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise PolydistillError(f"Could not load the weights of {model_dir} as {cls.__name__}: "
                               f"{str(err).splitlines()[0][:200]}") from err
    model.eval()
    emb_before = model.get_input_embeddings().weight.numel()
    params_before = count_parameters(model).total
    new_model = reduce_model(model, plan)
    new_backend = reduce_tokenizer_json(backend, plan)
    record = {
        "source": str(model_dir),
        "tokenizer_model": plan.model_type,
        "corpus": {"description": corpus_description, "sentences": n, "characters": len(chars)},
        "min_sentence_freq": min_sentence_freq,
        "min_sentence_count": plan.min_count,
        "max_tokens": max_tokens,
        "vocab_before": plan.old_size,
        "embedding_rows_before": model.get_input_embeddings().weight.shape[0],
        "vocab_after": plan.new_size,
        "removed": plan.old_size - plan.new_size,
        "kept_by_reason": plan.reasons,
        "fallback": FALLBACK_DOC[plan.model_type],
        "params_before": params_before,
        "params_after": count_parameters(new_model).total,
        "embedding_params_before": emb_before,
        "embedding_params_after": new_model.get_input_embeddings().weight.numel(),
        "seconds": None,
    }
    record["params_reduction"] = round(1 - record["params_after"] / record["params_before"], 4)
    # A student's provenance (teacher, copied layers, ...) stays valid; only its size changes.
    previous = read_provenance(model_dir) or Provenance()
    provenance = previous.with_step("vocab_reduction", record, versions=package_versions(),
                                    **({"parameters": record["params_after"]} if previous.parameters else {}))
    new_tokenizer = None
    path = None
    if out is not None:
        with atomic_output_dir(out, overwrite) as tmp:
            new_model.save_pretrained(tmp)
            new_tokenizer = _save_tokenizer(tokenizer, new_backend, tmp)
            require(len(new_tokenizer) == plan.new_size,
                    f"Reduced tokenizer has {len(new_tokenizer)} tokens, expected {plan.new_size}.")
            _copy_extras(model_dir, tmp)
            record["seconds"] = round(time.time() - start, 2)
            provenance = provenance.with_step("vocab_reduction", record)
            write_provenance(tmp, provenance)
            old_card = (model_dir / CARD_FILE).read_text(encoding="utf-8") if (model_dir / CARD_FILE).is_file() else None
            atomic_write_text(tmp / CARD_FILE, _model_card(str(model_dir), record, old_card))
        path = Path(out)
    else:
        new_tokenizer = build_reduced_tokenizer(tokenizer, plan)
        record["seconds"] = round(time.time() - start, 2)
    return VocabReduction(model=new_model, tokenizer=new_tokenizer, plan=plan, provenance=provenance, path=path)


def read_corpus_files(paths: Sequence[str | Path]) -> Iterable[str]:
    """Lines of plain-text files (one sentence per line), streamed."""
    for path in paths:
        path = Path(path)
        require(path.is_file(), f"Corpus file {path} does not exist; pass plain-text files, one sentence per line.")
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from handle


def dataset_sentences(name: str, languages, data_root: str | None = None, split: str = "train") -> list[str]:
    """Training sentences of a polydistill dataset (text for sequence tasks, joined tokens for token tasks)."""
    try:
        from polydistill.data import load_task_data
    except ImportError:
        from polydistill.data.load import load_task_data

    data = load_task_data(name, languages=languages, data_root=data_root)
    rows = data.splits[split]
    if "text" in rows.column_names:
        return list(rows["text"])
    return [" ".join(tokens) for tokens in rows["tokens"]]


__all__ = ["VocabPlan", "VocabReduction", "vocab_reduce", "plan_reduction", "sentence_frequencies",
           "reduce_model", "reduce_tokenizer_json", "build_reduced_tokenizer", "read_corpus_files",
           "dataset_sentences"]

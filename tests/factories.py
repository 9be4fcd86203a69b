"""Tiny randomly initialised models and tokenizers, built inside the tests (fast, offline).

``make_model_dir(tmp_path, arch="bert", task="sequence")`` writes an ordinary Hugging Face model
directory (config, model.safetensors, tokenizer) of a 4-layer, hidden-32 model.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

CORPUS = [
    "hello world this is a small test corpus",
    "wake me up at seven tomorrow morning",
    "what is the weather like in paris today",
    "play some jazz music in the kitchen",
    "hola mundo esto es una prueba pequeña",
    "despiértame a las siete mañana por la mañana",
    "bonjour le monde ceci est un petit test",
    "quel temps fait il à paris aujourd hui",
    "hallo welt das ist ein kleiner test",
    "spiel etwas jazz musik in der küche",
]

ARCHS = ("bert", "xlm-roberta", "deberta-v2", "electra")
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNIGRAM_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def _cached(builder):
    """Train each tokenizer once per session: the trainers are not bit-reproducible across calls,
    and tests compare vocabularies of teachers and students built separately."""
    cached = functools.lru_cache(maxsize=None)(lambda corpus, vocab_size: builder(list(corpus), vocab_size))

    @functools.wraps(builder)
    def wrapper(corpus=CORPUS, vocab_size: int = 300):
        return copy.deepcopy(cached(tuple(corpus), vocab_size))

    return wrapper


@_cached
def make_wordpiece_tokenizer(corpus=CORPUS, vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(corpus * 5, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=WORDPIECE_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return BertTokenizerFast(tokenizer_object=tok)


@_cached
def make_unigram_tokenizer(corpus=CORPUS, vocab_size: int = 300):
    """A SentencePiece-style Unigram tokenizer with XLM-R's special tokens (<s>, </s>, ...)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        corpus * 5, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=UNIGRAM_SPECIALS, unk_token="<unk>")
    )
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return XLMRobertaTokenizerFast(tokenizer_object=tok)


def make_tokenizer(arch: str = "bert"):
    return make_unigram_tokenizer() if arch == "xlm-roberta" or arch == "deberta-v2" else make_wordpiece_tokenizer()


def make_config(arch: str, tokenizer, num_labels: int = 3, **overrides):
    from transformers import BertConfig, DebertaV2Config, ElectraConfig, XLMRobertaConfig

    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    common.update(overrides)
    if arch == "bert":
        return BertConfig(**common)
    if arch == "xlm-roberta":
        common["max_position_embeddings"] = common["max_position_embeddings"] + 2
        return XLMRobertaConfig(**common)
    if arch == "electra":
        return ElectraConfig(embedding_size=common["hidden_size"], **common)
    if arch == "deberta-v2":
        return DebertaV2Config(
            relative_attention=True,
            position_buckets=16,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            type_vocab_size=0,
            **common,
        )
    raise ValueError(arch)


def make_model(arch: str = "bert", task: str = "sequence", num_labels: int = 3, seed: int = 0, **overrides):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

    tokenizer = make_tokenizer(arch)
    config = make_config(arch, tokenizer, num_labels=num_labels, **overrides)
    if task != "base":
        config.id2label = {i: f"LABEL_{chr(65 + i)}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(seed)
    cls = {"sequence": AutoModelForSequenceClassification, "token": AutoModelForTokenClassification, "base": AutoModel}[task]
    model = cls.from_config(config)
    model.eval()
    return model, tokenizer


def make_model_dir(root: Path, arch: str = "bert", task: str = "sequence", name: str | None = None, **kwargs) -> Path:
    model, tokenizer = make_model(arch, task, **kwargs)
    out = Path(root) / (name or f"{arch}-{task}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def make_labelled_dir(out: Path, labels: list[str], arch: str = "bert") -> Path:
    """A tiny sequence classifier saved to ``out`` whose head names ``labels`` (e.g. a dataset's)."""
    model, tokenizer = make_model(arch, "sequence", num_labels=len(labels))
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {name: i for i, name in enumerate(labels)}
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out

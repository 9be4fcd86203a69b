"""Loading Hugging Face models and tokenizers with one-sentence errors.

Every stage loads teachers, students and tokenizers through these helpers so that a missing or
corrupt directory, an unreachable hub id or an unknown head is reported the same way everywhere.
Safetensors only; ``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from polydistill.architectures import TASKS, Task, task_of
from polydistill.errors import PolydistillError


@contextlib.contextmanager
def quiet_loading():
    """Silence transformers' loading report for a load whose missing / unexpected weights are
    expected (a new task head, a head-less MLM teacher); real errors still raise."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def _describe(source: str) -> str:
    return f"directory {source}" if Path(source).exists() else f"hub id {source!r}"


# Any one of these makes a directory hold a tokenizer (tokenizer.json alone is enough; the others are
# the slow tokenizers' vocabularies, read with tokenizer_config.json).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
                   "sentencepiece.bpe.model", "spm.model", "spiece.model", "tokenizer.model")


def _check_source(source: str | Path) -> str:
    """``source`` as the string to hand to transformers; a local directory (a ``Path`` always is one)
    must exist and hold a readable config.json, so that a typo is not mistaken for a hub id and a
    corrupt config is reported as such, whichever file a loader would have read first."""
    given_as_path = isinstance(source, Path)
    text = str(source)
    path = Path(text).expanduser()
    looks_local = (given_as_path or path.is_absolute() or text.startswith((".", "~")) or path.exists()
                   or text.count("/") > 1)
    if not looks_local:
        _check_hub_reachable(text)
    if looks_local:
        if not path.exists():
            raise PolydistillError(f"Model directory {text} does not exist; pass a model directory or a hub id.")
        if not (path / "config.json").is_file():
            raise PolydistillError(
                f"{text} is not a Hugging Face model directory (no config.json); pass the directory "
                "that save_pretrained wrote."
            )
        _check_config_file(path / "config.json")
        return str(path) if text.startswith("~") else text  # transformers does not expand ~
    return text


def _check_hub_reachable(hub_id: str) -> None:
    """Fail fast on a hub id the machine cannot reach, instead of ~30 s of retries after the data loaded.
    Only when the model is not in the local Hugging Face cache (a cached model works offline)."""
    import os
    import socket

    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(hub_id, "config.json"), str):  # a path: cached, works offline
        return
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise PolydistillError(f"{hub_id!r} is not a local directory and the Hugging Face hub is off "
                               "(HF_HUB_OFFLINE); pass a model directory, or unset HF_HUB_OFFLINE when online.")
    host = constants.ENDPOINT.split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise PolydistillError(f"{hub_id!r} is not a local directory and {host} cannot be reached (offline?); "
                               "pass a model directory.") from None


def _check_config_file(config_file: Path) -> None:
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise PolydistillError(f"The model config {config_file} is not UTF-8 text ({err.reason}); the directory is "
                               "corrupt: restore its config.json or re-create the model.") from None
    except json.JSONDecodeError as err:
        raise PolydistillError(f"The model config {config_file} is not valid JSON ({err.msg} at line {err.lineno}); "
                               "the directory is corrupt: restore its config.json or re-create the model.") from None
    if not isinstance(data, dict):
        raise PolydistillError(f"The model config {config_file} is not a JSON object; the directory is corrupt: "
                               "restore its config.json or re-create the model.")


def load_config(source: str | Path, trust_remote_code: bool = False):
    from transformers import AutoConfig

    source = _check_source(source)
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise PolydistillError(
            f"Could not load a model config from {_describe(source)}: it is missing, unreachable "
            "(offline?) or corrupt; check the path or hub id."
        ) from err
    except ValueError as err:
        raise PolydistillError(f"The config of {_describe(source)} is not usable: {err}") from err


def auto_class(task: Task):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

    return {
        "sequence": AutoModelForSequenceClassification,
        "token": AutoModelForTokenClassification,
        "base": AutoModel,
    }[task]


def load_model(source: str | Path, task: Task | None = None, trust_remote_code: bool = False, **kwargs):
    """Load a model with the head its config names (or ``task``), from safetensors only."""
    from safetensors import SafetensorError

    config = kwargs.pop("config", None) or load_config(source, trust_remote_code)
    task = task or task_of(config)
    if task not in TASKS:
        raise PolydistillError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    source = str(source)
    try:
        # transformers' loading report is silenced (a new task head is expected); what matters is checked here
        with quiet_loading():
            model, info = auto_class(task).from_pretrained(
                source, config=config, use_safetensors=True, trust_remote_code=trust_remote_code,
                output_loading_info=True, **kwargs
            )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PolydistillError(
            f"Could not load the weights of {_describe(source)} ({detail[:200]}); the checkpoint may be "
            "corrupt, not safetensors, or of another architecture."
        ) from err
    _check_body_loaded(model, info, source)
    return model


def _check_body_loaded(model, info: dict, source: str) -> None:
    """Missing weights are expected only in a new task head; missing encoder weights mean a broken
    or foreign checkpoint, which would otherwise train from random weights without a word."""
    prefix = getattr(model, "base_model_prefix", "")
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    body = [k for k in missing if prefix and k.startswith(prefix + ".")] if task_of(model) != "base" else missing
    if body:
        raise PolydistillError(
            f"The checkpoint {_describe(source)} lacks {len(body)} encoder weight(s) (e.g. {body[0]}); it is "
            "incomplete or of another architecture."
        )


def load_tokenizer(source: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = _check_source(source)
    if Path(source).is_dir() and not any((Path(source) / name).is_file() for name in TOKENIZER_FILES):
        # transformers would build a tokenizer of the special tokens alone and carry on
        raise PolydistillError(
            f"{source} has no tokenizer files (expected tokenizer.json, or tokenizer_config.json with its "
            "vocabulary: vocab.txt, vocab.json + merges.txt or a SentencePiece model such as "
            "sentencepiece.bpe.model); save the tokenizer into the model directory (tokenizer.save_pretrained)."
        )
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as err:
        raise PolydistillError(
            f"Could not load a tokenizer from {_describe(source)}; the directory needs the tokenizer "
            "files saved with the model (tokenizer.json or its vocabulary)."
        ) from err


def vocabularies_match(tokenizer_a, tokenizer_b) -> bool:
    """True when both tokenizers map the same strings to the same ids."""
    return tokenizer_a.get_vocab() == tokenizer_b.get_vocab()

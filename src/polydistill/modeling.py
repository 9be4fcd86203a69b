"""Loading Hugging Face models and tokenizers with one-sentence errors.

Every stage loads teachers, students and tokenizers through these helpers so that a missing or
corrupt directory, an unreachable hub id or an unknown head is reported the same way everywhere.
Safetensors only; ``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from polydistill.errors import PolydistillError

Task = Literal["sequence", "token", "base"]
TASKS: tuple[str, ...] = ("sequence", "token", "base")


def _describe(source: str) -> str:
    return f"directory {source}" if Path(source).exists() else f"hub id {source!r}"


def _check_source(source: str | Path) -> str:
    source = str(source)
    path = Path(source)
    looks_local = path.is_absolute() or source.startswith((".", "~")) or path.exists() or source.count("/") > 1
    if looks_local:
        if not path.exists():
            raise PolydistillError(f"Model directory {source} does not exist; pass a model directory or a hub id.")
        if not (path / "config.json").is_file():
            raise PolydistillError(
                f"{source} is not a Hugging Face model directory (no config.json); pass the directory "
                "that save_pretrained wrote."
            )
    return source


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


def task_of_config(config) -> Task:
    """Which head a checkpoint carries, from ``config.architectures``."""
    names = " ".join(config.architectures or [])
    if "SequenceClassification" in names:
        return "sequence"
    if "TokenClassification" in names:
        return "token"
    return "base"


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
    task = task or task_of_config(config)
    if task not in TASKS:
        raise PolydistillError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    source = str(source)
    try:
        return auto_class(task).from_pretrained(
            source, config=config, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PolydistillError(
            f"Could not load the weights of {_describe(source)} ({detail[:200]}); the checkpoint may be "
            "corrupt, not safetensors, or of another architecture."
        ) from err


def load_tokenizer(source: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = _check_source(source)
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

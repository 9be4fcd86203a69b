"""One vocabulary of flags for every command.

- Options every command shares (``--dataset/-d``, ``--languages/-l``, ``--data-root``, ``--out/-o``,
  ``--seed``, ``--threads``, ``--overwrite``, ``--model/-m``) are defined once here; commands use
  these objects, so the names, aliases and help cannot drift apart.
- Training and KD flags are *derived* from the pydantic settings models
  (``polydistill.distill.settings``): :func:`settings_options` turns each field into a typer option
  (name from the field or its ``cli`` metadata, default and help from the field), and
  :func:`with_settings` adds them to a command. A new hyper-parameter is one field in one model.
- ``MODEL`` is a positional argument everywhere, with ``--model/-m`` as the same thing spelled as an
  option (:func:`one_model`); ``--teacher/--student`` only where two models are involved.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from typer.models import OptionInfo

from polydistill.distill.settings import MAX_SEED, TINYBERT_WEIGHTS
from polydistill.errors import PolydistillError

# ------------------------------------------------------------------------------------ shared options
MODEL_ARGUMENT = typer.Argument(None, help="Model directory or hub id.", show_default=False)
MODEL_OPTION = typer.Option(None, "--model", "-m", help="The model, as an option (same as the MODEL argument).")
DATASET = typer.Option(..., "--dataset", "-d", "--data",
                       help="massive | massive-slots | tsm | universal-ner (uner) | a directory of your own data.")
DATASET_OPTIONAL = typer.Option(None, "--dataset", "-d", "--data",
                                help="massive | massive-slots | tsm | universal-ner (uner) | a directory of your own data.")
LANGUAGES = typer.Option("all", "--languages", "-l",
                         help="all | seen | unseen | english | comma list of codes (see: polydistill data languages).")
DATA_ROOT = typer.Option(None, "--data-root",
                         help="Folder with massive/, tsm/, universal-ner/ (else $POLYDISTILL_DATA_ROOT, else the hub).")
FRACTION = typer.Option(None, "--fraction", help="Stratified fraction of the train split (per language and label).")
OUT = typer.Option(..., "--out", "-o", help="Output directory (written atomically).")
SEED = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Seed of every random choice of the run.")
MAX_DEV = typer.Option(500, "--max-dev-per-language", min=0,
                       help="Evaluate during training on at most N validation examples per language (a fixed "
                       "sample; 0 = all): a full UNER dev pass costs minutes on a CPU.")
THREADS = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: torch's choice).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace an existing output.")
PUSH_TO_HUB = typer.Option(None, "--push-to-hub", help="Upload the finished output to this Hub repository "
                           "(OWNER/NAME; token from HF_TOKEN or `hf auth login`).")
PRECISION_AUTO = typer.Option("auto", "--precision",
                              help="auto (bf16 where the CPU or GPU supports it) | fp32 | bf16 | fp16.")


def one_model(argument: str | None, option: str | None, what: str = "model") -> str:
    """The model given as the positional argument or as ``--model`` (exactly one of them)."""
    if argument and option and argument != option:
        raise PolydistillError(f"Give the {what} once: as the argument or with --model, not both.")
    chosen = argument or option
    if not chosen:
        raise PolydistillError(f"Missing the {what}: pass it as the first argument or with --model.")
    return chosen


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------ derived options
def _flags(name: str, field) -> list[str]:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return list(extra.get("cli") or [f"--{name.replace('_', '-')}"])


def _cli_type(annotation) -> Any:
    """The type typer parses a field as: scalars as they are, the rest (choices included) as text that
    pydantic then validates, so every bad value gets the same "Invalid ... settings" sentence."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is dict:  # NAME=VALUE, repeatable (the field's validator reads the list)
        return list[str] | None
    if origin in (typing.Union, types.UnionType):
        if len(args) == 1:
            return _cli_type(args[0]) | None
        return str | None
    if annotation in (int, float, bool, str, Path):
        return annotation
    return str


def settings_options(model: type[BaseModel], *, exclude: AbstractSet[str] = frozenset(), prefix: str = "",
                     defaults: dict[str, Any] | None = None) -> list[inspect.Parameter]:
    """typer parameters for ``model``'s fields (named ``prefix + field``)."""
    params = []
    for name, field in model.model_fields.items():
        if name in exclude:
            continue
        default = (defaults or {}).get(name, ... if field.is_required() else field.get_default(call_default_factory=True))
        if isinstance(default, (list, tuple, dict)):  # given as a comma list or repeated NAME=VALUE: parsed by the field
            default = ",".join(map(str, default)) if default and not isinstance(default, dict) else None
        flags = _flags(name, field)
        cli_type = _cli_type(field.annotation)
        if cli_type is bool:
            main = flags[0].removeprefix("--")
            flags = [f"{flags[0]}/--no-{main}", *flags[1:]]
        option = typer.Option(default, *flags, help=field.description or "", show_default=default not in (None, ...))
        params.append(inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=cli_type))
    return params


def extra_option(name: str, annotation, default: Any, *flags: str, help: str) -> inspect.Parameter:
    """One more keyword option for :func:`with_settings` (e.g. an alias flag)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *flags, help=help))


# --fp16 / --bf16: the old spellings of --precision, kept as aliases (Training maps them)
PRECISION_ALIASES = [extra_option("fp16", bool, False, "--fp16", help="Alias of --precision fp16."),
                     extra_option("bf16", bool, False, "--bf16", help="Alias of --precision bf16.")]


def with_precision_aliases(params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """``params`` plus :data:`PRECISION_ALIASES`; their ``--precision`` defaults to None ("not given", the
    settings' default then applies), so that :func:`without_unset_aliases` can tell ``--precision fp32
    --bf16`` (a contradiction) from a plain ``--bf16``."""
    out = []
    for param in params:
        info = param.default
        if param.name == "precision" and isinstance(info, OptionInfo):
            param = param.replace(annotation=str | None, default=typer.Option(
                None, *(info.param_decls or ()), help=f"{info.help} Default: {info.default}.", show_default=False))
        out.append(param)
    return out + PRECISION_ALIASES


def without_unset_aliases(values: dict[str, Any]) -> dict[str, Any]:
    """The settings values without the precision aliases not given (and without a ``--precision`` not given);
    an alias that contradicts ``--precision`` or the other alias is refused in one sentence (one that agrees
    with it is fine)."""
    aliases = [name for name in ("fp16", "bf16") if values.get(name)]
    precision = values.get("precision")
    if len(aliases) == 2:
        raise PolydistillError("--fp16 and --bf16 contradict each other; pass one precision (--precision fp16 or "
                               "--precision bf16).")
    if aliases and precision is not None and precision != aliases[0]:
        raise PolydistillError(f"--precision {precision} and --{aliases[0]} contradict each other; pass one of them "
                               f"(--{aliases[0]} means --precision {aliases[0]}).")
    return {k: v for k, v in values.items()
            if not ((k in ("fp16", "bf16") and not v) or (k == "precision" and v is None))}


def kd_weight_options() -> list[inspect.Parameter]:
    """``--w-<term>`` for every registered KD term, plus ``--kd-term NAME=WEIGHT`` for any term."""
    from polydistill.distill.terms import get_term, term_names

    params = [
        inspect.Parameter(f"w_{name}", inspect.Parameter.KEYWORD_ONLY, annotation=float,
                          default=typer.Option(TINYBERT_WEIGHTS.get(name, 0.0), f"--w-{name.replace('_', '-')}",
                                               help=f"Weight of the {name} term (0 = off): {get_term(name).description}"))
        for name in term_names()
    ]
    params.append(inspect.Parameter("kd_term", inspect.Parameter.KEYWORD_ONLY, annotation=list[str] | None,
                                    default=typer.Option(None, "--kd-term", help="NAME=WEIGHT of a registered KD "
                                                         "term (repeatable), e.g. a term of a plugin.")))
    return params


def kd_weights(values: dict[str, Any]) -> dict[str, float]:
    """The weights given by ``--w-<term>`` and ``--kd-term NAME=WEIGHT``."""
    weights = {key.removeprefix("w_"): value for key, value in values.items() if key.startswith("w_")}
    for item in values.get("kd_term") or []:
        name, sep, weight = item.partition("=")
        try:
            weights[name.strip()] = float(weight)
        except ValueError:
            raise PolydistillError(f"--kd-term expects NAME=WEIGHT such as rel=1.0, got {item!r}.") from None
        if not sep:
            raise PolydistillError(f"--kd-term expects NAME=WEIGHT such as rel=1.0, got {item!r}.")
    return weights


def with_settings(*groups: tuple[str, list[inspect.Parameter]]):
    """Add the parameters of each ``(group, params)`` to a command; the command receives each group's
    values as one dict argument named ``group`` (declared keyword-only without a default: ``*, group: dict``)."""

    def decorate(fn):
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)  # resolved in fn's module (its annotations are strings)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
               if p.name not in {g for g, _ in groups}]
        members = {group: [p.name for p in params] for group, params in groups}
        extra = [p for _, params in groups for p in params]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            grouped = {group: {name: kwargs.pop(name) for name in names} for group, names in members.items()}
            return fn(**kwargs, **grouped)

        # typeshed's functools._Wrapped does not declare __signature__, which inspect.signature (typer) reads
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *extra], return_annotation=None)
        wrapper.__annotations__ = {}  # typer reads the resolved types from the signature
        del wrapper.__wrapped__  # typer must read the new signature, not fn's
        return wrapper

    return decorate


def validated(model: type[BaseModel], values: dict[str, Any], what: str):
    """``model(**values)`` or one sentence naming the bad setting."""
    try:
        return model(**values)
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise PolydistillError(f"Invalid {what}: {message} ({_flag_of(model, first['loc'], message)}).") from None


def _flag_of(model: type[BaseModel], loc: tuple, message: str) -> str:
    """The command-line flag of the setting a validation error is about."""
    field = str(loc[0]) if loc else ""
    if field == "weights":  # one flag per KD term: --w-<term>, or --kd-term NAME=WEIGHT
        term = re.search(r"(?:the |term ')(\w+)", message)
        return f"--w-{term.group(1).replace('_', '-')}" if term else "--w-<term> / --kd-term"
    if field in model.model_fields:
        return _flags(field, model.model_fields[field])[0]
    return "--" + field.replace("_", "-") if field else "settings"


def in_main_process() -> bool:
    """Whether this process prints results (rank 0 under torchrun / accelerate, or a single process)."""
    from polydistill.ranks import is_main_process

    return is_main_process()

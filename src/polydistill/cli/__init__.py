"""The ``polydistill`` command line: one thin typer command per pipeline stage.

Each stage keeps its command in ``polydistill/cli/<stage>.py`` with a ``register(app)`` function;
the logic lives in the stage's package. A :class:`~polydistill.errors.PolydistillError` becomes one
sentence on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import sys
from importlib.metadata import version
from pathlib import Path

import typer
from typer.core import TyperCommand

from polydistill.errors import PolydistillError
from polydistill.io import reading
from polydistill.logs import configure

app = typer.Typer(
    name="polydistill",
    help="Multilingual knowledge distillation: weight-copy students, KD, evaluation, grids.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Stage modules in pipeline order; each defines register(app).
_STAGES = ("student", "data", "distill", "evaluate", "export", "lang", "experiments", "bench", "compress", "demo")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"polydistill {version('polydistill')}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Show the libraries' warnings and progress "
                                "bars too (-vv: their info messages)."),
) -> None:
    """Multilingual knowledge distillation: weight-copy students, KD, evaluation, grids."""
    configure(verbose)


# Flags (or argument names) of what a command writes, or of a grid's work dir (read and written by design);
# every other parameter whose value is an existing local path is an input that no output may touch.
OUTPUT_FLAGS = frozenset({"--out", "--work-dir", "--report", "--update-docs", "--check-docs", "work_dir"})


def _input_paths(command: TyperCommand, params: dict) -> list[str]:
    outputs = {p.name for p in command.params if OUTPUT_FLAGS & {*p.opts, p.name or ""}}
    values = [v for name, v in params.items() if name not in outputs]
    flat = [item for v in values for item in (v if isinstance(v, list | tuple) else [v])]
    return [str(item) for item in flat if isinstance(item, str | Path) and str(item).strip()]


class _Command(TyperCommand):
    """Every command runs inside :func:`polydistill.io.reading` of its path arguments: the output-safety
    rule of the io preflight then knows the command's inputs (model, teacher, data folder, corpus, ...)."""

    def invoke(self, ctx):
        with reading(*_input_paths(self, ctx.params)):
            return super().invoke(ctx)


def _guard(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _guard(group.typer_instance)


def _register_all() -> None:
    from polydistill.distill.terms import load_plugins

    load_plugins()  # KD terms of installed plugins get their --w-<term> flags too
    for stage in _STAGES:
        importlib.import_module(f"polydistill.cli.{stage}").register(app)
    _guard(app)


_register_all()


def _end_progress_bars() -> None:
    """Close the progress bars an error interrupted, so that its sentence starts on a line of its own."""
    if "tqdm" not in sys.modules:
        return
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        with contextlib.suppress(Exception):
            bar.close()


def fail(message: str) -> None:
    """Print one sentence on stderr and exit with code 2."""
    _end_progress_bars()
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(2)


# OSErrors that are the machine's, not a bug: no permission, a read-only file system, a full disk.
_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _os_error_sentence(err: OSError) -> str:
    name = err.filename if err.filename is not None else "a file"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"Cannot write {name}: the disk is full ({err.strerror}); free some space or write elsewhere."
    if err.errno == errno.EROFS:
        return f"Cannot write {name}: the file system is read-only; choose another path."
    return f"Cannot access {name}: {err.strerror}; fix its permissions or choose another path."


def _usage_sentence(err: typer.TyperException) -> str:
    """A bad flag or value (click's usage errors, which typer vendors) as one sentence."""
    text = err.format_message() if hasattr(err, "format_message") else str(err)
    message = " ".join(text.split())  # a suggestion may come on a second line
    ctx = getattr(err, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None and ctx.command_path else ""
    return f"{message.rstrip('.')}{hint}."


def main(argv: list[str] | None = None) -> None:
    """Run the command line; bad input (a :class:`PolydistillError`, a bad flag or value, a machine
    that refuses a write) is one ``error:`` sentence on stderr and exit code 2. Always exits."""
    try:
        code = app(args=argv, prog_name="polydistill", standalone_mode=False)
    except PolydistillError as err:
        fail(str(err))
    except typer.TyperException as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # typer printed the help when it raised this
            sys.exit(2)
        fail(_usage_sentence(err))
    except typer.Abort:
        _end_progress_bars()
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 130
    except OSError as err:
        if err.errno not in _ENVIRONMENT_ERRNOS:
            raise
        fail(_os_error_sentence(err))
    except RuntimeError as err:  # torch's writers report a full disk as a RuntimeError
        if "No space left" not in str(err):
            raise
        fail("Cannot write the output: the disk is full; free some space or write elsewhere.")
    if code == 130:  # typer turns Ctrl-C into exit code 130
        _end_progress_bars()
        typer.echo("interrupted; finished work is kept and a re-run resumes.", err=True)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

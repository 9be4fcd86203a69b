"""The ``polydistill`` command line: one thin typer command per pipeline stage.

Each stage keeps its command in ``polydistill/cli/<stage>.py`` with a ``register(app)`` function;
the logic lives in the stage's package. A :class:`~polydistill.errors.PolydistillError` becomes one
sentence on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from polydistill.errors import PolydistillError

app = typer.Typer(
    name="polydistill",
    help="Multilingual knowledge distillation: weight-copy students, KD, evaluation, grids.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Stage modules in pipeline order; each defines register(app).
_STAGES = ("student", "data", "distill", "evaluate", "lang", "experiments", "bench", "demo")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"polydistill {version('polydistill')}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Multilingual knowledge distillation: weight-copy students, KD, evaluation, grids."""


def _register_all() -> None:
    from polydistill.distill.terms import load_plugins

    load_plugins()  # KD terms of installed plugins get their --w-<term> flags too
    for stage in _STAGES:
        importlib.import_module(f"polydistill.cli.{stage}").register(app)


_register_all()


def fail(message: str) -> None:
    """Print one sentence on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except PolydistillError as err:
        fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted; finished work is kept and a re-run resumes.", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()

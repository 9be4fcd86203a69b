"""mypy over src/ (the [tool.mypy] settings of pyproject.toml) reports no error.

A name imported from a module that no longer has it (``polydistill demo --compress`` once imported a
renamed progress helper, and crashed only after the whole demo had run), an attribute a module lacks, an
argument of the wrong type: each fails here instead of in a user's run. A cold run takes about a minute
on 2 CPU cores; later runs reuse .mypy_cache at the repository root.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

REPO = Path(__file__).resolve().parents[1]


def _mypy(*targets: str) -> tuple[int, list[str], str]:
    stdout, stderr, status = api.run(["--config-file", str(REPO / "pyproject.toml"),
                                      "--cache-dir", str(REPO / ".mypy_cache"), *targets])
    return status, [line for line in stdout.splitlines() if ": error:" in line], stdout + stderr


def test_mypy_finds_no_error_in_src():
    status, errors, output = _mypy(str(REPO / "src"))
    assert not errors and status == 0, f"mypy found {len(errors)} error(s) in src/:\n{output}"


def test_mypy_reports_a_missing_name_and_a_missing_module_attribute(tmp_path):
    """The settings keep catching the demo's bug: an import of a name that does not exist, also inside an
    unannotated function, and an attribute a module does not have."""
    module = tmp_path / "uses_polydistill.py"
    module.write_text("def show():\n"
                      "    from polydistill.cli.progress import _progress\n"
                      "    import polydistill.cli.progress as progress\n\n"
                      "    return _progress, progress.no_such_helper\n", encoding="utf-8")
    status, errors, output = _mypy(str(module))
    assert status == 1 and len(errors) == 2, output
    assert 'Module "polydistill.cli.progress" has no attribute "_progress"' in errors[0]
    assert 'Module has no attribute "no_such_helper"' in errors[1]

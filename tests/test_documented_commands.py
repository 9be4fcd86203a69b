"""Every ``polydistill …`` command shown in README.md and docs/*.md still works (issue #30, item 4).

The commands are read from the fenced code blocks of the docs (``\\`` continuations joined, comments
dropped, ``VAR=…`` / ``export VAR=…`` lines and ``for … do … done`` loops interpreted, ``$VAR`` and
``$(basename …)`` expanded) and from the backticked commands of README's command table. Then:

* **every** command is checked against the CLI without running it: its subcommand exists, every flag
  it names is a flag of that subcommand (``typer.main.get_command(app)``), and — unless it is a synopsis
  with ``[…]`` / ``…`` — click parses its whole argument list (values, choices, arity);
* the commands marked RUN in ``COVERAGE`` are executed through ``polydistill.cli.main`` in a temporary
  directory, one doc after the other, in the order the doc gives them (so README's finetune → student
  → distill → evaluate chain consumes its own outputs), after the documented arguments are made tiny by
  ``ADAPT_OPTIONS`` / ``ADAPT_SET`` (a tiny random model for the e5 fixture, the test fixtures for the
  data, 2 optimiser steps for ``--epochs``/``--budget-minutes``, …), and must exit 0;
* a documented command that ``COVERAGE`` does not cover, or a ``COVERAGE`` row that covers no
  documented command any more, fails the test: a new command in the docs needs a decision here.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from polydistill.cli import app, main
from polydistill.data.languages import MASSIVE_LOCALES, TSM_LANGUAGES, UNER_TEST_ONLY, UNER_TRAIN_TREEBANKS

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DATA = Path(__file__).parent / "fixtures" / "data"
DOCS = ("README.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")))
README_TABLE = "README.md (command table)"
PLACEHOLDER_HOME = "/home/user"


@dataclass(frozen=True)
class Run:
    """Executed for real after ADAPT; ``extra`` is appended to the adapted argument list."""

    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """Flag-checked only (as every command is); ``why`` says why it is not executed."""

    why: str


RUN = Run()
SLOW_COMPRESS = Check("--target-speedup exports and times candidate students for minutes; docs/reproduction.md's "
                      "compress (explicit sizes) → compress-seeds chain runs")
CHAIN_NOT_RUN = Check("consumes the output of a documented command that is only flag-checked")
LAUNCHER = Check("a torchrun / accelerate launch; tests/test_distributed.py runs torchrun on tiny models")
SEEN_ELSEWHERE = Check("its subcommand runs in another chain here (its flags are checked); kept out for the time budget")

# How each documented command is handled: (doc, the start of the command as documented) -> Run or Check.
# The longest matching start wins; every documented command must match a row, every row a command.
COVERAGE: dict[tuple[str, str], Run | Check] = {
    # README.md
    ("README.md", "polydistill demo"): Check("the real demo grid trains for minutes; tests/test_demo.py runs it"),
    ("README.md", "polydistill compress teacher/"): SLOW_COMPRESS,
    ("README.md", "polydistill finetune ~/.cache/polydistill/e5-small"): RUN,
    ("README.md", "polydistill student runs/teacher"): RUN,
    ("README.md", "polydistill distill --teacher runs/teacher"): RUN,
    ("README.md", "polydistill evaluate --model runs/kd"): RUN,
    (README_TABLE, "polydistill data show"): RUN,
    (README_TABLE, "polydistill data languages"): RUN,
    (README_TABLE, "polydistill finetune MODEL"): RUN,
    (README_TABLE, "polydistill student teacher/"): RUN,
    (README_TABLE, "polydistill distill --teacher teacher/"): RUN,
    (README_TABLE, "polydistill evaluate kd/"): RUN,
    (README_TABLE, "polydistill export kd/"): RUN,
    (README_TABLE, "polydistill grid run configs/"): Run(extra=("--dry-run",)),
    (README_TABLE, "polydistill grid report DIR"): Check("DIR is a placeholder; a grid report of a full store takes minutes"),
    (README_TABLE, "polydistill vocab plan MODEL ..."): Check("a synopsis ('...'); docs/lang.md's vocab plan runs"),
    (README_TABLE, "polydistill vocab reduce MODEL ..."): Check("a synopsis ('...'); docs/lang.md's vocab reduce runs"),
    (README_TABLE, "polydistill lm-distill MODEL ..."): Check("a synopsis ('...'); docs/lang.md's lm-distill runs"),
    (README_TABLE, "polydistill bench teacher/"): RUN,
    (README_TABLE, "polydistill compress teacher/"): SLOW_COMPRESS,
    (README_TABLE, "polydistill compress-seeds cz-s0/"): Check("its runs are placeholders; docs/reproduction.md's compress-seeds runs"),
    # docs/architecture.md has no fenced polydistill command
    # docs/compress.md
    ("docs/compress.md", "polydistill compress TEACHER"): Check("a synopsis"),
    ("docs/compress.md", "polydistill compress-seeds cz-s0/"): Check("a synopsis"),
    ("docs/compress.md", 'polydistill finetune "$E5" --dataset tsm'): SEEN_ELSEWHERE,
    ("docs/compress.md", 'polydistill finetune "$E5" --dataset massive'): SEEN_ELSEWHERE,
    ("docs/compress.md", "polydistill compress tsm-new-s0"): SLOW_COMPRESS,
    ("docs/compress.md", "polydistill compress flagship-massive-teacher"): SLOW_COMPRESS,
    ("docs/compress.md", 'polydistill finetune "$E5" --dataset universal-ner'): SEEN_ELSEWHERE,
    ("docs/compress.md", "polydistill compress uner-teacher"): Check("a 60-minute real run (its report is committed); "
                                                                    "tests/test_compress.py runs compress on a token task"),
    ("docs/compress.md", "polydistill compress slots-teacher"): Check("a 30-minute real run (its report is committed); "
                                                                     "tests/test_compress.py runs compress on "
                                                                     "massive-slots fixtures"),
    # docs/lang.md
    ("docs/lang.md", "polydistill vocab plan MODEL"): Check("a synopsis"),
    ("docs/lang.md", "polydistill vocab reduce MODEL"): Check("a synopsis"),
    ("docs/lang.md", "polydistill lm-distill --teacher T"): Check("a synopsis"),
    ("docs/lang.md", "polydistill vocab plan ~/.cache/polydistill/e5-small --dataset massive --languages sw-KE"): RUN,
    ("docs/lang.md", "polydistill vocab reduce --model ~/.cache/polydistill/e5-small --dataset massive"): RUN,
    ("docs/lang.md", "polydistill lm-distill --teacher runs/e5-sw"): RUN,
    # its '...' stands for the rest of a finetune command, --out included
    ("docs/lang.md", "polydistill finetune --model runs/e5-sw-6L"): Run(extra=("--out", "runs/e5-sw-6L-massive")),
    ("docs/lang.md", "polydistill vocab reduce --model ~/.cache/polydistill/e5-small --dataset tsm"): RUN,
    ("docs/lang.md", "polydistill finetune $m"): RUN,
    ("docs/lang.md", "polydistill evaluate --model ft-$(basename $m)"): RUN,
    ("docs/lang.md", "polydistill vocab reduce --model ft-e5-small"): RUN,
    ("docs/lang.md", "polydistill vocab reduce $E5"): SEEN_ELSEWHERE,
    ("docs/lang.md", "polydistill finetune $E5"): SEEN_ELSEWHERE,
    ("docs/lang.md", "polydistill finetune e5-ende-wf"): CHAIN_NOT_RUN,
    ("docs/lang.md", "polydistill evaluate $m"): CHAIN_NOT_RUN,
    ("docs/lang.md", "polydistill grid run configs/cpu/eliquare_"): Run(extra=("--dry-run",)),
    ("docs/lang.md", "polydistill grid report runs/eliquare"): Check("a report of the eliquare store; its claims "
                                                                     "are tested on a synthetic store"),
    ("docs/lang.md", "polydistill grid report results/eliquare"): Check("the same blocks are rendered from the "
                                                                        "store by tests/test_docs_tables.py"),
    ("docs/lang.md", "polydistill vocab reduce ft-e5-$LANG-full"): Check("$LANG / $WF are placeholders the reader sets"),
    # docs/performance.md
    ("docs/performance.md", "polydistill finetune ~/.cache/polydistill/e5-small $MAS"): SEEN_ELSEWHERE,
    ("docs/performance.md", "polydistill export runs/kd"): RUN,  # runs/kd: README's step-by-step (run first)
    ("docs/performance.md", "polydistill evaluate --model runs/$m"): RUN,
    ("docs/performance.md", "polydistill bench --model runs/kd"): RUN,
    ("docs/performance.md", 'polydistill student "$E5"'): RUN,
    ("docs/performance.md", 'polydistill export "$WORK/e5-6L"'): RUN,
    ("docs/performance.md", 'polydistill bench --model "$E5"'): RUN,
    ("docs/performance.md", "polydistill distill $KD"): CHAIN_NOT_RUN,
    ("docs/performance.md", "polydistill export tsm-kd6"): CHAIN_NOT_RUN,
    ("docs/performance.md", "polydistill evaluate $m"): CHAIN_NOT_RUN,
    ("docs/performance.md", "polydistill bench tsm-new-s0"): CHAIN_NOT_RUN,
    ("docs/performance.md", "polydistill student ~/.cache/polydistill/e5-small --layers"): Check(
        "writes the runtime benchmark's students to /tmp/bench; `polydistill student` runs in other chains here"),
    ("docs/performance.md", "polydistill bench ~/.cache/polydistill/e5-small /tmp/bench"): Check(
        "the runtime benchmark (minutes; openvino is an optional extra); tests/test_runtimes.py runs "
        "bench --runtimes on tiny models"),
    # docs/reproduction.md
    ("docs/reproduction.md", "polydistill grid run configs/"): Run(extra=("--dry-run",)),
    ("docs/reproduction.md", "polydistill grid report"): Check("a report of a full store takes minutes; "
                                                             "tests/test_docs_tables.py checks its docs blocks"),
    ("docs/reproduction.md", "polydistill finetune $E5 $COMMON"): RUN,
    ("docs/reproduction.md", "polydistill distill --teacher uner-teacher"): RUN,
    ("docs/reproduction.md", "polydistill evaluate $m --dataset universal-ner"): RUN,
    ("docs/reproduction.md", "polydistill finetune $E5 $TSM"): SEEN_ELSEWHERE,
    ("docs/reproduction.md", "polydistill finetune $E5 $MAS"): SEEN_ELSEWHERE,
    ("docs/reproduction.md", "polydistill student /work/runs/selective/teacher/model"): Check(
        "an absolute path of the author's machine; tests/test_importance_cli.py runs --width-select importance"),
    ("docs/reproduction.md", 'polydistill finetune "$E5" --dataset massive'): RUN,
    ("docs/reproduction.md", 'polydistill finetune "$E5" --dataset tsm'): SEEN_ELSEWHERE,
    ("docs/reproduction.md", "polydistill compress flagship-massive-teacher"): RUN,
    ("docs/reproduction.md", "polydistill compress tsm-seen-teacher"): CHAIN_NOT_RUN,
    ("docs/reproduction.md", "polydistill compress-seeds massive-hw-aug-s0"): RUN,
    ("docs/reproduction.md", "polydistill compress-seeds slots-cz"): Check("the committed runs live under "
                                                                         "results/token-tasks/; "
                                                                         "tests/test_compress_seeds.py renders "
                                                                         "every --against block from them"),
    ("docs/reproduction.md", "polydistill compress-seeds tsm-hw-aug-s0"): CHAIN_NOT_RUN,
    # docs/scaling.md
    ("docs/scaling.md", "torchrun"): LAUNCHER,
    ("docs/scaling.md", "accelerate launch"): LAUNCHER,
    ("docs/scaling.md", "polydistill distill $DD"): CHAIN_NOT_RUN,
    # the Ray backend: the flags parse and the grid expands; tests/test_grid_ray.py runs it on a tiny grid
    ("docs/scaling.md", "polydistill grid run configs/cpu/table1_all_languages.yaml --backend ray --workers 2"):
        Run(extra=("--dry-run",)),
    ("docs/scaling.md", "polydistill grid run configs/cpu/table1_all_languages.yaml --threads 2"):
        Run(extra=("--dry-run",)),
    ("docs/scaling.md", "polydistill grid run configs/paper/table1_all_languages.yaml --backend ray --address"): Check(
        "needs a running Ray cluster (and GPUs); tests/test_grid_ray.py runs --backend ray on a local 2-worker cluster"),
}

# How a RUN command is made tiny: options rewritten (flag -> value) or dropped (flag -> None) wherever they
# appear, then ADAPT_SET. ~ is a temporary home whose ~/.cache/polydistill/e5-small is a tiny random BERT
# (4 layers, hidden 32, 128 positions), as is the placeholder MODEL; […] brackets and '...' are dropped.
ADAPT_OPTIONS: dict[str, str | None] = {
    "--epochs": None,  # → --max-steps 2 (ADAPT_SET)
    "--budget-minutes": None,  # → --max-steps 2
    "--eval-steps": None,  # one evaluation at the end of the 2 steps
    "--data-root": "<fixtures>",  # the test fixtures (so is $POLYDISTILL_DATA_ROOT)
    "--threads": "1",
    "--layers": "2",  # the tiny teacher has 4 layers, hidden 32, FFN 64
    "--hidden": "16",
    "--intermediate": "32",
    "--calibration-examples": "32",
    "--vocab-coverage": None,  # a dozen fixture lines per language cannot cover 97 % of their validation tokens
}
# Options set per subcommand (a documented value of the same flag is replaced).
STEPS = ("--max-steps", "2")
ADAPT_SET: dict[str, tuple[str, ...]] = {
    "finetune": STEPS,
    "lm-distill": STEPS,
    # a 2-step teacher does not beat the majority baseline: distilling from it needs the documented opt-in
    "distill": (*STEPS, "--allow-weak-teacher"),
    "compress": (*STEPS, "--allow-weak-teacher", "--no-wordfreq", "--bench-lengths", "16", "--bench-repeats", "1",
                 "--speedup-repeats", "1", "--calibration-size", "32", "--bootstrap-resamples", "200"),
    "bench": ("--repeats", "1", "--lengths", "16"),
}
# Inputs the docs expect the reader to have, written into the working directory of the run.
INPUT_FILES = {"sw_wiki.txt": "habari ya asubuhi rafiki yangu\nhello world this is a small test corpus\n" * 8}
# Docs whose RUN commands read outputs of another doc's RUN commands.
RUN_AFTER = {"docs/performance.md": "README.md"}


# ---------------------------------------------------------------------------------------------------------
# Reading the commands out of the docs


@dataclass(frozen=True)
class Command:
    doc: str
    line: int  # first line of the command in its file
    text: str  # as documented: continuations joined, comment dropped, whitespace collapsed
    argv: tuple[str, ...]  # the arguments after `polydistill` (launcher removed), variables expanded
    synopsis: bool  # has […] / … / | placeholders: flag names are checked, not parsed

    @property
    def file(self) -> str:
        return "README.md" if self.doc == README_TABLE else self.doc

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def _outside_quotes(text: str):
    """Yield (index, char, inside_quotes) of text."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
            yield i, char, True
        else:
            if char in "'\"":
                quote = char
            yield i, char, bool(quote)


def _strip_comment(line: str) -> str:
    for i, char, quoted in _outside_quotes(line):
        if char == "#" and not quoted and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _statements(line: str) -> list[str]:
    """Split a logical line on ; and && outside quotes."""
    parts, start, skip = [], 0, False
    for i, char, quoted in _outside_quotes(line):
        if skip:
            skip = False
            continue
        if quoted:
            continue
        if char == ";":
            parts.append(line[start:i])
            start = i + 1
        elif line.startswith("&&", i):
            parts.append(line[start:i])
            start, skip = i + 2, True
    parts.append(line[start:])
    return [" ".join(p.split()) for p in parts if p.strip()]


def _logical_lines(body: str, first_line: int, indent_continues: bool) -> list[tuple[int, str]]:
    """(first line number, text) of each command line: `\\` continuations joined (and, in a synopsis block
    without a language, indented lines too), comments dropped."""
    lines: list[tuple[int, str]] = []
    pending = False
    for offset, raw in enumerate(body.split("\n")):
        if lines and (pending or (indent_continues and raw[:1].isspace() and raw.strip())):
            number, text = lines[-1]
            lines[-1] = (number, text + " " + raw.strip())
        elif raw.strip():
            lines.append((first_line + offset, raw.strip()))
        pending = raw.rstrip().endswith("\\")
        if pending:
            number, text = lines[-1]
            lines[-1] = (number, text.rstrip()[:-1].rstrip())
    return [(number, _strip_comment(text).strip()) for number, text in lines if _strip_comment(text).strip()]


def _expand(text: str, env: dict[str, str]) -> str:
    """$VAR, ${VAR} and $(basename …) with the doc's own variables; unknown ones are left as written."""
    def variable(match):
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    text = re.sub(r"\$\{(\w+)\}|\$(\w+)", variable, text)
    return re.sub(r"\$\(basename ([^)]*)\)", lambda m: os.path.basename(m.group(1).strip().strip('"').rstrip("/")), text)


def _words(text: str, home: str) -> list[str]:
    return [home + word[1:] if word.startswith("~/") else word for word in shlex.split(text)]


def _polydistill_argv(words: list[str]) -> list[str] | None:
    if words[:1] == ["polydistill"]:
        return words[1:]
    if words[:1] in (["torchrun"], ["accelerate"]) and "-m" in words:
        at = words.index("-m")
        if words[at + 1: at + 2] == ["polydistill"]:
            return words[at + 2:]
    return None


def _interpret(doc: str, statements: list[tuple[int, str]], env: dict[str, str], home: str,
               out: list[Command]) -> None:
    """A very small shell: assignments, for loops, and the polydistill commands (one per loop value)."""
    i = 0
    while i < len(statements):
        line, stmt = statements[i]
        words = stmt.split()
        if words[0] == "for" and len(words) >= 3 and words[2] == "in":
            depth, j = 1, i + 1
            while depth:
                if j == len(statements):
                    raise ValueError(f"{doc}:{line}: a for loop without its done")
                depth += {"for": 1, "done": -1}.get(statements[j][1].split()[0], 0)
                j += 1
            body = [s for s in statements[i + 1: j - 1] if s[1] != "do"]
            for value in _words(_expand(" ".join(words[3:]), env), home):
                _interpret(doc, body, {**env, words[1]: value}, home, out)
            i = j
            continue
        if words[0] == "export" or re.match(r"^\w+=", words[0]):  # VAR=… [VAR=…], export VAR=…
            for word in shlex.split(stmt)[1 if words[0] == "export" else 0:]:
                name, value = word.split("=", 1)
                value = _expand(value, env)
                env[name] = home + value[1:] if value.startswith("~/") else value
        elif words[0] in ("polydistill", "torchrun", "accelerate"):  # other programs are not ours to check
            try:
                words = _words(_expand(stmt, env), home)
            except ValueError as err:  # an unclosed quote: the reader's shell would refuse it too
                raise ValueError(f"{doc}:{line}: {err}: {stmt}") from None
            argv = _polydistill_argv(words)
            if argv is not None:
                synopsis = any(re.search(r"[\[\]|]|\.\.\.", w) for w in argv)
                out.append(Command(doc, line, stmt, tuple(argv), synopsis))
        i += 1


def documented_commands(home: str = PLACEHOLDER_HOME) -> list[Command]:
    commands: list[Command] = []
    for doc in DOCS:
        text = (REPO / doc).read_text(encoding="utf-8")
        env: dict[str, str] = {}  # a reader runs a doc's blocks in one shell
        if doc == "README.md":  # the command table first: its outputs (teacher/, kd/, …) are its own
            for match in re.finditer(r"^\|.*$", text, re.M):
                line = text[: match.start()].count("\n") + 1
                for inline in re.findall(r"`(polydistill [^`]*)`", match.group(0)):
                    stmt = " ".join(inline.split())
                    _interpret(README_TABLE, [(line, stmt)], env, home, commands)
        for match in re.finditer(r"^```(\S*)[^\n]*\n(.*?)^```", text, re.S | re.M):
            lang, body = match.group(1), match.group(2)
            if lang not in ("", "bash", "sh", "shell", "console"):
                continue
            first = text[: match.start()].count("\n") + 2
            statements = [(number, stmt) for number, line in _logical_lines(body, first, lang == "")
                          for stmt in _statements(line)]
            _interpret(doc, statements, env, home, commands)
    return commands


# ---------------------------------------------------------------------------------------------------------
# Checking commands against the CLI


@functools.cache
def _root():
    return typer.main.get_command(app)


def _resolve(argv: tuple[str, ...]):
    """(the click command, its name path, its arguments) of a polydistill argument list."""
    command, path, rest = _root(), [], list(argv)
    while rest and rest[0] in ("-v", "-vv", "--verbose"):
        rest.pop(0)
    while hasattr(command, "commands"):
        if not rest or rest[0] not in command.commands:
            name = rest[0] if rest else "(nothing)"
            raise LookupError(f"'{name}' is not a subcommand of '{' '.join(['polydistill', *path])}'")
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return command, " ".join(path), rest


def _options(command) -> dict:
    return {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)
            if opt.startswith("-")}


def _named_flags(args: list[str]) -> list[str]:
    flags = []
    for arg in args:
        for piece in arg.split("|"):
            piece = piece.strip("[]")
            if re.match(r"^--?[A-Za-z][\w-]*", piece):
                flags.append(piece.split("=", 1)[0])
    return flags


def flag_problems(command: Command) -> list[str]:
    try:
        cli, name, args = _resolve(command.argv)
    except LookupError as err:
        return [f"{command.where()}\n    {err}"]
    options = _options(cli)
    problems = [f"{command.where()}\n    'polydistill {name}' has no flag {flag}"
                for flag in _named_flags(args) if flag not in options]
    if not problems and not command.synopsis:
        try:
            cli.make_context(f"polydistill {name}", list(args))
        except Exception as err:  # click's usage errors (vendored by typer)
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            problems.append(f"{command.where()}\n    'polydistill {name}' does not parse it: {message}")
    return problems


def _coverage(command: Command) -> tuple[tuple[str, str], Run | Check] | None:
    rows = [(key, how) for key, how in COVERAGE.items() if key[0] == command.doc and command.text.startswith(key[1])]
    return max(rows, key=lambda row: len(row[0][1])) if rows else None


COMMANDS = documented_commands()


def test_the_docs_show_commands_and_the_reader_finds_the_chains():
    texts = {c.text for c in COMMANDS}
    assert len(COMMANDS) > 50 and {c.doc for c in COMMANDS} >= {"README.md", README_TABLE, "docs/compress.md"}
    readme = [c.argv[0] for c in COMMANDS if c.doc == "README.md" and c.argv[0] != "compress"]
    assert readme[-4:] == ["finetune", "student", "distill", "evaluate"], readme
    # a loop yields one command per value, with its variable and $(basename …) expanded
    ft = [c.argv for c in COMMANDS if c.text.startswith("polydistill evaluate --model ft-$(basename $m)")]
    assert [a[2] for a in ft] == ["ft-e5-small", "ft-e5-en"], ft
    # `VAR="…"` options expand into words; comments and \ continuations are gone
    mas = next(c for c in COMMANDS if c.text.startswith("polydistill finetune ~/.cache/polydistill/e5-small $MAS"))
    assert mas.argv[:4] == ("finetune", f"{PLACEHOLDER_HOME}/.cache/polydistill/e5-small", "--dataset", "massive")
    assert not any("#" in c.text or "\\" in c.text for c in COMMANDS) and "polydistill demo" in texts


def test_every_documented_command_is_covered_and_every_row_is_used():
    uncovered = [c.where() for c in COMMANDS if _coverage(c) is None]
    assert not uncovered, ("documented commands that COVERAGE neither runs nor flag-checks; add a row "
                           "(doc, start of the command) -> RUN / Check(why):\n" + "\n".join(uncovered))
    # a command the table has not seen is not covered by a row of a neighbour
    assert _coverage(Command("README.md", 1, "polydistill finetune runs/new --dataset tsm", ("finetune",), False)) is None
    used = {_coverage(c)[0] for c in COMMANDS}
    stale = [f"{doc}: {start}" for doc, start in COVERAGE if (doc, start) not in used]
    assert not stale, "COVERAGE rows that match no documented command any more:\n" + "\n".join(stale)


def test_every_flag_of_every_documented_command_exists():
    problems = [problem for command in COMMANDS for problem in flag_problems(command)]
    assert not problems, "documented commands the CLI refuses:\n" + "\n".join(problems)


@pytest.mark.parametrize("make, message", [
    (lambda c: c.argv[:1] + ("--no-such-flag", "3") + c.argv[1:], "has no flag --no-such-flag"),
    (lambda c: ("no-such-command",) + c.argv[1:], "'no-such-command' is not a subcommand"),
    (lambda c: c.argv + ("--max-length", "many"), "does not parse it"),
])
def test_the_flag_check_names_the_command_and_the_flag(make, message):
    distill = next(c for c in COMMANDS if c.doc == "README.md" and c.argv[0] == "distill")
    broken = Command(distill.doc, distill.line, distill.text, make(distill), False)
    problems = flag_problems(broken)
    assert len(problems) == 1 and message in problems[0] and "README.md:" in problems[0], problems


# ---------------------------------------------------------------------------------------------------------
# Running the RUN commands on tiny inputs


def _tiny_data_root(root: Path) -> Path:
    """The test fixtures, with every language of the named partitions present (a missing one is a copy of a
    fixture language), so that documented ``--languages all|seen|unseen|<codes>`` need no rewriting."""
    tsm = root / "tsm" / "sentiment"
    tsm.mkdir(parents=True)
    for language in TSM_LANGUAGES:
        source = FIXTURE_DATA / "tsm" / "sentiment" / language
        (tsm / language).symlink_to(source if source.is_dir() else source.with_name("english"))
    massive = root / "massive" / "data"
    massive.mkdir(parents=True)
    present = {p.name.split(".")[0]: p for p in (FIXTURE_DATA / "massive" / "data").iterdir()}
    for locale in MASSIVE_LOCALES:
        source = present.get(locale, present["en-US"])
        (massive / (locale + "".join(source.suffixes))).symlink_to(source)
    uner = root / "universal-ner"
    uner.mkdir()
    for folder in (FIXTURE_DATA / "universal-ner").iterdir():
        (uner / folder.name).symlink_to(folder)
    have = {p.name.split("-ud-")[0] for p in (FIXTURE_DATA / "universal-ner").glob("UNER_*/*-ud-*.iob2")}
    for code in (*UNER_TRAIN_TREEBANKS, *UNER_TEST_ONLY):
        if code in have:
            continue
        folder = uner / f"UNER_Copy-{code}"
        folder.mkdir()
        for split in ("test",) if code in UNER_TEST_ONLY else ("train", "dev", "test"):
            source = FIXTURE_DATA / "universal-ner" / "UNER_Croatian-SET" / f"hr_set-ud-{split}.iob2"
            (folder / f"{code}-ud-{split}.iob2").symlink_to(source)
    return root


@dataclass
class Workspace:
    home: Path
    data: Path
    cwd: Path
    model: Path
    finished: dict[str, str | None]  # doc -> None (its RUN commands passed) or what failed


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    from factories import make_model_dir

    root = tmp_path_factory.mktemp("documented")
    home = root / "home"
    model = make_model_dir(home / ".cache" / "polydistill", "bert", "base", name="e5-small",
                           max_position_embeddings=128)
    cwd = root / "work"
    cwd.mkdir()
    (cwd / "configs").symlink_to(REPO / "configs")  # grid configs are named relative to the repository
    for name, text in INPUT_FILES.items():
        (cwd / name).write_text(text, encoding="utf-8")
    return Workspace(home, _tiny_data_root(root / "data"), cwd, model, {})


def adapt(command: Command, how: Run, ws: Workspace) -> list[str]:
    """The tiny argument list of a RUN command (after `polydistill`)."""
    cli, name, args = _resolve(command.argv)
    args = [ws.model.as_posix() if a == "MODEL" else a.strip("[]") for a in args if a.strip("[]") not in ("", "...")]
    options, settings = _options(cli), ADAPT_SET.get(name, ()) + how.extra
    forced = {a for a in settings if a.startswith("--")}
    out, i = [], 0
    while i < len(args):
        flag = args[i].split("=", 1)[0]
        param = options.get(flag)
        width = 2 if param is not None and "=" not in args[i] and not (param.is_flag or param.count) else 1
        if flag in forced:
            pass
        elif flag in ADAPT_OPTIONS:
            value = ADAPT_OPTIONS[flag]
            out += [] if value is None else [flag, ws.data.as_posix() if value == "<fixtures>" else value]
        else:
            out += args[i: i + width]
        i += width
    return [*name.split(), *out, *settings]


def _execute(argv: list[str], capsys) -> tuple[int, str]:
    import traceback

    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except Exception:  # a traceback is a broken command too
        code, trace = -1, traceback.format_exc()
        captured = capsys.readouterr()
        return code, captured.out + captured.err + trace
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _run_doc(doc: str, ws: Workspace, capsys, monkeypatch) -> str | None:
    if doc in ws.finished:
        return ws.finished[doc]
    if doc in RUN_AFTER and (failed := _run_doc(RUN_AFTER[doc], ws, capsys, monkeypatch)):
        ws.finished[doc] = f"needs the outputs of {RUN_AFTER[doc]}, whose run failed:\n{failed}"
        return ws.finished[doc]
    import torch

    monkeypatch.chdir(ws.cwd)
    monkeypatch.setenv("POLYDISTILL_DATA_ROOT", ws.data.as_posix())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on 2 shared cores make tiny models ~20x slower
    ws.finished[doc] = "did not finish"
    try:
        for command in documented_commands(home=ws.home.as_posix()):
            how = _coverage(command)
            if command.file != doc or how is None or not isinstance(how[1], Run):
                continue
            argv = adapt(command, how[1], ws)
            code, output = _execute(argv, capsys)
            if code != 0:
                tail = "\n".join(output.strip().splitlines()[-15:])
                ws.finished[doc] = (f"{command.where()}\n    ran: polydistill {shlex.join(argv)}\n"
                                    f"    exit code {code}; last output:\n{tail}")
                return ws.finished[doc]
    finally:
        torch.set_num_threads(threads)
    ws.finished[doc] = None
    return None


RUN_DOCS = sorted({c.file for c in COMMANDS if isinstance((_coverage(c) or (None, None))[1], Run)}, key=DOCS.index)


@pytest.mark.filterwarnings("ignore:en_ewt has no UNER v1 train file")  # as on the real data (docs say so)
@pytest.mark.parametrize("doc", RUN_DOCS)
def test_documented_commands_run_on_tiny_inputs(doc, workspace, capsys, monkeypatch):
    failed = _run_doc(doc, workspace, capsys, monkeypatch)
    assert failed is None, f"a documented command fails on tiny inputs:\n{failed}"

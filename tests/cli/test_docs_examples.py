"""Every ``gwinfer`` command line in README.md and docs/*.md is one the CLI accepts, and names inputs that exist.

The code blocks of the documents (fenced, and indented four spaces) are read; every command line that runs
``gwinfer`` (also ``.venv/bin/gwinfer``, ``python -m gwinfer.cli``, ``python -m gwinfer.train``,
``python -m gwinfer.cli.triton``, behind ``mpirun``/``torchrun``/``nice``/environment assignments) is split
as the shell would (continuation lines joined, comments dropped, ``{a,b}`` expanded) and

* parsed by the command's own argparse parser (:func:`gwinfer.cli.main.build_parser`), so the subcommand,
  every flag and every typed value must be accepted; the commands are not run;
* each input path under the repository's own folders (configs/, models/, docs/, bench/, ../shared/) must
  exist; inputs under runs/, out/, catalogues/ and the like must be written by some documented command
  (its ``--out``/``--repo``/... or inside it). Outputs (the command's OUTPUTS in :mod:`gwinfer.cli.main`)
  are not checked; placeholders (``<name>``, ``...``) and a user's own files (``H1.hdf5``) are skipped.

Then a few cheap documented commands are run as written, from a temporary working directory with their
repository paths made absolute, to show that they do not depend on the current directory.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: First path components that name the repository's own inputs (must exist in a fresh clone).
REPO_DIRS = {"configs", "models", "docs", "bench", "scripts", "tests", "gwinfer", "../shared"}
#: First path components of files that documented commands make (must be some documented command's output).
MADE_DIRS = {"runs", "out", "catalogues", "model_repo", "triton_repo", "maps", "rob", "report"}
#: Tokens allowed before the gwinfer command: environment assignments and launchers.
PREFIX = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*=\S*|nice|time|timeout|mpirun|torchrun|-n|-m|\d+|--nproc_per_node=\d+|--standalone"
    r"|(\S*/)?python3?(\.\d+)?)$"
)
#: ``-m`` modules that are gwinfer entry points -> which parser reads their arguments.
MODULES = {
    "gwinfer.cli": "gwinfer",
    "gwinfer.train": "train",
    "gwinfer.cli.train": "train",
    "gwinfer.cli.triton": "triton",
}


@dataclass(frozen=True)
class Example:
    """One documented command line: where it is, the entry point and its arguments (braces expanded)."""

    doc: str
    line: int
    text: str
    entry: str  # "gwinfer", "train" or "triton"
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced block (not ```python) and every indented block."""
    blocks: list[tuple[int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            lang = line.strip()[3:].strip()
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            if lang in ("", "bash", "sh", "shell", "console"):
                blocks.append((i + 2, lines[i + 1 : j]))
            i = j + 1
            continue
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            blocks.append((i + 1, [ln[4:] for ln in lines[i:j]]))
            i = j
            continue
        i += 1
    return blocks


def logical_lines(start: int, lines: list[str]) -> list[tuple[int, str]]:
    """Lines with their backslash continuations joined, numbered by their first line."""
    out: list[tuple[int, str]] = []
    buf, first = "", None
    for k, line in enumerate(lines):
        if first is None:
            first = start + k
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((first, buf + line))
        buf, first = "", None
    if buf:
        out.append((first, buf))
    return out


def expand_braces(token: str) -> list[str]:
    """Shell brace expansion of ``a{x,y}b`` (several groups, no nesting)."""
    parts = re.split(r"(\{[^{}]*,[^{}]*\})", token)
    options = [p[1:-1].split(",") if p.startswith("{") and p.endswith("}") else [p] for p in parts]
    return ["".join(c) for c in itertools.product(*options)]


def command_of(text: str) -> tuple[str, list[str]] | None:
    """(entry, argv) if the shell line runs a gwinfer entry point, else None."""
    try:
        tokens = shlex.split(text, comments=True)
    except ValueError:
        return None
    for i, tok in enumerate(tokens):
        if Path(tok).name == "gwinfer" and "=" not in tok:
            entry, rest = "gwinfer", tokens[i + 1 :]
        elif tok == "-m" and i + 1 < len(tokens) and tokens[i + 1] in MODULES:
            entry, rest = MODULES[tokens[i + 1]], tokens[i + 2 :]
        else:
            if not PREFIX.match(tok):
                return None
            continue
        if not all(PREFIX.match(t) for t in tokens[:i]):
            return None
        return entry, rest
    return None


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        for start, block in code_blocks(doc.read_text()):
            for line, text in logical_lines(start, block):
                cmd = command_of(text)
                if cmd is None:
                    continue
                entry, argv = cmd
                for variant in itertools.product(*[expand_braces(a) for a in argv]):
                    found.append(Example(doc.relative_to(ROOT).as_posix(), line, text.strip(), entry, variant))
    return found


EXAMPLES = examples()


def parse(example: Example):
    """The argparse namespace of ``example`` (SystemExit with argparse's message on stderr if refused)."""
    from gwinfer.cli.main import build_parser
    from gwinfer.cli.train import TASKS, build_task_parser
    from gwinfer.cli.triton import build_parser as triton_parser

    argv = list(example.argv)
    if example.entry == "gwinfer":
        return build_parser().parse_args(argv)
    if example.entry == "train":
        task = argv.pop(0) if argv and argv[0] in TASKS else "train"
        return build_task_parser(task).parse_args(argv)
    return triton_parser().parse_args(argv)


def input_and_output_paths(example: Example) -> tuple[list[str], list[str]]:
    """(input paths, output paths) among ``example``'s argument values, by the command's OUTPUTS."""
    from gwinfer.cli.main import OUTPUTS

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = vars(parse(example))
        except SystemExit:  # refused: reported by test_documented_command_is_accepted_by_the_cli
            return [], []
    command = ns.get("command") or ns.get("task") or example.entry
    outputs = set(OUTPUTS.get(command, {}))
    if example.entry == "train":
        outputs = {"out"}
    ins, outs = [], []
    for dest, value in ns.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and ("/" in v or Path(v).suffix):
                (outs if dest in outputs else ins).append(v)
    return ins, outs


def _first(path: str) -> str:
    parts = Path(path).parts
    return "/".join(parts[:2]) if parts and parts[0] == ".." else (parts[0] if parts else "")


def is_placeholder(path: str) -> bool:
    return "<" in path or "..." in path or path.startswith("/")


def test_the_documents_hold_the_examples():
    """The parser finds the documents' commands (a broken reader would pass every other test vacuously)."""
    docs = {e.doc for e in EXAMPLES}
    assert {"README.md", "docs/serving.md", "docs/results-posterior.md", "docs/results-wavenet.md"} <= docs
    assert len(EXAMPLES) >= 40, len(EXAMPLES)
    entries = {e.entry for e in EXAMPLES}
    assert entries == {"gwinfer", "train", "triton"}, entries
    assert command_of("no gwinfer import here") is None and command_of("curl -s 127.0.0.1:8000/v2") is None
    assert command_of("OMP_NUM_THREADS=1 nice -n 5 .venv/bin/gwinfer info x") == ("gwinfer", ["info", "x"])
    assert expand_braces("runs/{a,b}-{c,d}.pt") == ["runs/a-c.pt", "runs/a-d.pt", "runs/b-c.pt", "runs/b-d.pt"]


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
def test_documented_command_is_accepted_by_the_cli(example):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            parse(example)
        except SystemExit as exit_:
            pytest.fail(f"{example}\n  refused by argparse (exit {exit_.code}): {err.getvalue().strip()}")


def test_documented_inputs_exist_or_are_made_by_a_documented_command():
    made: list[str] = []
    for e in EXAMPLES:
        made += input_and_output_paths(e)[1]
    made_paths = [Path(m.rstrip("/")) for m in made if not is_placeholder(m)]
    problems = []
    for e in EXAMPLES:
        for path in input_and_output_paths(e)[0]:
            if is_placeholder(path):
                continue
            first = _first(path)
            if first == "../shared" and not (ROOT / "../shared").is_dir():
                continue  # the shared data beside the repository is absent on this machine
            if first in REPO_DIRS:
                if not (ROOT / path).exists():
                    problems.append(f"{e}\n  {path} does not exist in the repository")
            elif first in MADE_DIRS:
                p = Path(path.rstrip("/"))
                if not any(p == m or m in p.parents for m in made_paths):
                    problems.append(f"{e}\n  {path} is not written by any documented command")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------ run as written
def documented(entry_words: list[str], contains: str = "") -> Example:
    """The first documented gwinfer command starting with ``entry_words`` whose line holds ``contains``."""
    for e in EXAMPLES:
        if e.entry == "gwinfer" and list(e.argv[: len(entry_words)]) == entry_words and contains in e.text:
            return e
    raise AssertionError(f"no documented `gwinfer {' '.join(entry_words)}` ({contains!r})")


def absolute(argv: tuple[str, ...], replace: dict[str, str] | None = None) -> list[str]:
    """``argv`` with repository paths made absolute and ``replace``d values swapped (a user's own files)."""
    out = []
    for a in argv:
        a = (replace or {}).get(a, a)
        out.append(str(ROOT / a) if _first(a) in REPO_DIRS else a)
    return out


def run_gwinfer(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gwinfer.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_documented_commands_run_from_any_working_directory(tmp_path):
    """README's `info --json`, `info` and `predict --waveform` and the docs' `degeneracy` (on a small grid),
    run from an empty folder elsewhere with their repository paths absolute: they need nothing from the cwd."""
    from gwinfer.physics.timegrid import TimeGrid
    from gwinfer.waveforms import get_backend

    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    info = documented(["info", "--json"], "models/")
    run = run_gwinfer(absolute(info.argv), cwd)
    assert run.returncode == 0, f"{info}\n{run.stderr}"
    record = json.loads(run.stdout)
    assert record["kind"] == "model" and record["time_grid"]["dt"] > 0

    model = info.argv[-1]
    run = run_gwinfer(["info", str(ROOT / model)], cwd)  # the plain summary of the same model
    assert run.returncode == 0 and record["model_kind"] in run.stdout, run.stderr

    predict = documented(["predict", "--model"], "--waveform")
    user_file = predict.argv[predict.argv.index("--waveform") + 1]  # the user's own NR file: a text h22 here
    grid = TimeGrid(-10000.0, 130.0, 2.0)
    h = get_backend("IMRPhenomT").h22(4.0, 0.3, -0.2, grid)
    wave = cwd / "wave.txt"
    np.savetxt(wave, np.column_stack([grid.times() + 37.0, h.real, h.imag]))  # another clock: any offset
    out = cwd / "answer.json"
    run = run_gwinfer([*absolute(predict.argv, {user_file: str(wave)}), "--out", str(out)], cwd)
    assert run.returncode == 0, f"{predict}\n{run.stderr}"
    answer = json.loads(out.read_text())
    assert abs(answer["q"] - 4.0) < 0.3 and answer["overlap"] > 0.99, answer

    degeneracy = documented(["degeneracy"])
    small = ["--n", "3", "--t-start", "-502", "--dt", "4", "--workers", "1", "--quiet", "--q-range", "5", "7"]
    run = run_gwinfer([*absolute(degeneracy.argv), *small], cwd)
    assert run.returncode == 0, f"{degeneracy}\n{run.stderr}"
    maps = degeneracy.argv[degeneracy.argv.index("--out") + 1]
    assert (cwd / maps / "maps.json").is_file() and (cwd / maps / "maps.png").is_file()
    assert sorted(p.name for p in cwd.iterdir()) == sorted(["answer.json", "wave.txt", Path(maps).parts[0]])

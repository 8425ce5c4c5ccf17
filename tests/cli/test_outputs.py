"""Every command checks where it will write before it starts working: one line, exit 2, nothing made."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from support import ROOT

MODEL = str(ROOT / "models" / "rb-chi-random80k")


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write to: mode 0500, or for root (who writes through modes) a read-only tmpfs
    mounted there; a skip where neither can be had."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o500)
        yield ro
        ro.chmod(0o700)
        return
    if not shutil.which("mount") or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
                                                   capture_output=True).returncode:  # fmt: skip
        pytest.skip("root writes through file modes and cannot mount a read-only tmpfs here")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--model", MODEL, "--data", "{cat}", "--json", "{file}/r.json"], "is a file, not a folder"),
        (["evaluate", "--model", MODEL, "--data", "{cat}", "--json", "{dir}"], "is a folder; a file path is needed"),
        (["evaluate", "--model", MODEL, "--data", "{cat}", "--report", "{file}"], "is a file; a folder is needed"),
        (["predict", "--model", MODEL, "--data", "{cat}", "--out", "{dir}"], "is a folder; a file path is needed"),
        (["train", "--config", str(ROOT / "configs" / "train-tiny.yaml"), "--out", "{file}"], "a folder is needed"),
        (["sample", "--model", "m.pt", "--strain", "s.npy", "--out", "{dir}"], "a file path is needed"),
        (["export", "--model", MODEL, "--repo", "{file}"], "a folder is needed"),
        (["evaluate", "--model", MODEL, "--data", "{cat}", "--json", "{ro}/r.json"], "is not writable"),
        (["export", "--model", MODEL, "--repo", "{ro}/repo"], "is not writable"),
    ],
)
def test_outputs_checked_before_work(argv, message, tmp_path, micro_catalogue, capsys, read_only):
    from gwinfer.cli import main

    (tmp_path / "file").write_text("x")
    values = {
        "cat": str(micro_catalogue),
        "file": str(tmp_path / "file"),
        "dir": str(tmp_path),
        "ro": str(read_only),
    }
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gwinfer: error: ") and message in err and err.count("\n") == 1, err


def test_bad_limits_are_one_line(tmp_path, micro_catalogue, capsys):
    from gwinfer.cli import main

    (tmp_path / "exp.yaml").write_text(
        f"data: {{catalogue: {micro_catalogue}, limit_train: -5}}\nmodel: {{kind: reduced_basis}}\n"
    )
    assert main(["train", "--config", str(tmp_path / "exp.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert "data.limit_train = -5 must be an integer >= 1" in capsys.readouterr().err
    assert main(["evaluate", "--model", MODEL, "--data", str(micro_catalogue), "--limit", "0"]) == 2
    assert "limit = 0 must be a positive integer" in capsys.readouterr().err
    assert main(["evaluate", "--model", MODEL, "--data", str(micro_catalogue), "--split", "holdout"]) == 2
    assert "has no split 'holdout'" in capsys.readouterr().err


def test_every_option_has_help_with_its_default():
    """Every option of every gwinfer command, of the per-rank training entry (``python -m gwinfer.cli.train``)
    and of ``python -m gwinfer.cli.triton`` has help, and shows its default."""
    import argparse

    from gwinfer.cli.main import build_parser
    from gwinfer.cli.train import TASKS, build_task_parser
    from gwinfer.cli.triton import build_parser as triton_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {**sub.choices, **{f"cli.train {t}": build_task_parser(t) for t in TASKS}, "cli.triton": triton_parser()}
    bad = []
    for name, command in parsers.items():
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or "-h" in action.option_strings:
                continue
            text = formatter._get_help_string(action)
            if not action.help:
                bad.append(f"{name} {action.option_strings[-1]}: no help")
            elif action.nargs == 0:  # a flag (--quiet, --no-resume): its default is its absence
                continue
            elif action.default not in (None, False, []) and not action.required and "default" not in text:
                bad.append(f"{name} {action.option_strings[-1]}: default not shown")
    assert not bad, bad

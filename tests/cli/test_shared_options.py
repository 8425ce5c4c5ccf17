"""The options several commands share mean the same everywhere: ``--model`` (a folder or its model.pt),
``--workers`` (processes; default all usable cores), ``--seed``, ``--n-samples`` (posterior samples) and
``--out`` (a file or a folder, as its help says and as checked before work)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from support import ROOT

from gwinfer.cli.main import OUTPUTS, build_parser
from gwinfer.cli.options import MODEL_INPUTS, resolve_shared, usable_cores

POINT = ROOT / "models" / "rb-chi-random80k"
POSTERIOR = ROOT / "models" / "gw5d-iaf-ft"
#: the smallest argv of each command that reads a model, {m}: the model
MODEL_ARGV = {
    "predict": ["--model", "{m}", "--data", "cat"],
    "evaluate": ["--model", "{m}", "--data", "cat"],
    "robustness": ["--model", "{m}", "--data", "cat"],
    "export": ["--model", "{m}", "--repo", "repo"],
    "sample": ["--model", "{m}", "--strain", "s.npy", "--out", "r.json"],
    "pp": ["--model", "{m}", "--data", "sim.h5", "--out", "pp"],
    "analyze": ["--model", "{m}", "--gps", "1126259462.4", "--out", "r.json"],
    "prepare": ["--model", "{m}", "--gps", "1126259462.4", "--out", "seg.npy"],
    "distill": ["--teacher", "{m}", "--config", "c.yaml", "--out", "run"],
}


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(command: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in command._actions for s in a.option_strings}


@pytest.mark.parametrize("command", sorted(MODEL_ARGV))
@pytest.mark.parametrize("form", ["folder", "file"])
def test_model_is_a_folder_or_its_model_pt_in_every_command(command, form):
    assert set(MODEL_ARGV) == set(MODEL_INPUTS)
    model = POSTERIOR if command in ("sample", "pp", "analyze", "prepare", "distill") else POINT
    given = model if form == "folder" else model / "model.pt"
    args = build_parser().parse_args([command, *(a.format(m=given) for a in MODEL_ARGV[command])])
    resolve_shared(args)
    assert getattr(args, MODEL_INPUTS[command]) == str(model / "model.pt")
    help_text = options(commands()[command])["--teacher" if command == "distill" else "--model"].help
    assert "folder or model.pt" in help_text, help_text


def test_a_missing_model_folder_is_one_line(tmp_path, capsys):
    from gwinfer.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["sample", "--model", str(tmp_path / "empty"), "--strain", "s.npy", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err == f"gwinfer: error: model file {tmp_path / 'empty' / 'model.pt'} does not exist\n"


def test_sample_with_the_folder_equals_sample_with_the_file(tmp_path, capsys):
    """The same draws, and the result records the model file (with its sha256) either way."""
    from gwinfer.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(3).standard_normal((1, 1024)).astype(np.float32))
    posteriors = []
    for name, model in (("folder", POSTERIOR), ("file", POSTERIOR / "model.pt")):
        out = tmp_path / f"{name}.json"
        argv = ["sample", "--model", str(model), "--strain", str(tmp_path / "x.npy"), "--n-samples", "300",
                "--seed", "2", "--no-corner", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        result = json.loads(out.read_text())
        posteriors.append(result["posterior"]["content"])
        assert str(POSTERIOR / "model.pt") in json.dumps(result["meta_data"])
    assert posteriors[0] == posteriors[1]
    capsys.readouterr()


def test_workers_mean_processes_with_one_default(tmp_path, capsys):
    from gwinfer.cli import main

    having = {name: options(c)["--workers"] for name, c in commands().items() if "--workers" in options(c)}
    assert {"generate", "evaluate", "robustness", "degeneracy", "simulate", "fd-bank", "analyze", "demo"} <= set(having)
    for name, action in having.items():  # generate: None, the library's all usable cores (1 per MPI rank)
        assert action.default == (None if name == "generate" else usable_cores()) and action.type is int, name
        assert action.help.startswith("processes") and "(default: all usable cores" in action.help, (name, action.help)
    argv = ["degeneracy", "--q", "2", "--s1", "0", "--s2", "0", "--out", str(tmp_path / "maps"), "--workers", "0"]
    assert main(argv) == 2
    assert capsys.readouterr().err == "gwinfer: error: --workers 0 must be an integer >= 1\n"
    assert not (tmp_path / "maps").exists() or not any((tmp_path / "maps").iterdir())


def test_n_samples_seed_and_out_mean_the_same_everywhere():
    for name, command in commands().items():
        opts = options(command)
        for action in set(opts.values()):
            text = (action.help or "").lower()
            if "posterior samples" in text or "number of samples" in text:
                assert "--n-samples" in action.option_strings, (name, action.option_strings, text)
        if "--n-samples" in opts:
            assert opts["--n-samples"].type is int and "samples" in opts["--n-samples"].help, name
        if "--seed" in opts:
            seed = opts["--seed"]
            assert seed.type is int and "seed" in seed.help.lower() and seed.default in (0, None), name
        if "--out" in opts:
            kind = OUTPUTS.get(name, {}).get("out")
            assert kind is not None, f"{name} --out is not checked before work (OUTPUTS)"
            word = "folder" if kind == "dir" else "file"
            assert word in opts["--out"].help, (name, opts["--out"].help)
    # the older --n of sample and analyze is the same option as --n-samples
    every = commands()
    for name in ("sample", "analyze"):
        assert options(every[name])["--n"] is options(every[name])["--n-samples"]


def test_a_served_models_name_is_name_everywhere():
    """export, promote and stream name a model of a repository / server with ``--name`` (``--model`` stays
    the older spelling of promote and stream); ``--model`` elsewhere is always a model folder or file."""
    every = commands()
    for name in ("export", "promote", "stream"):
        assert "--name" in options(every[name]), name
    for name in ("promote", "stream"):
        assert options(every[name])["--model"] is options(every[name])["--name"]
    for name, command in every.items():
        if "--model" in options(command) and name not in ("promote", "stream"):
            assert name in MODEL_INPUTS and "folder or model.pt" in options(command)["--model"].help, name


def test_the_command_sets_its_own_allocator_defaults(monkeypatch):
    """``process_defaults`` applies the Makefile's malloc tuning through glibc's mallopt (M_MMAP_MAX = 0,
    M_TRIM_THRESHOLD = 2**31 - 1) unless the caller set MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_."""
    import ctypes
    import importlib
    import os
    import sys

    cli_main = importlib.import_module("gwinfer.cli.main")

    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt is glibc's")
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc())
    for var in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    cli_main.process_defaults()
    assert calls == [(-4, 0), (-1, 2**31 - 1)]
    assert os.environ["OMP_NUM_THREADS"] == "1"
    calls.clear()
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    cli_main.process_defaults()
    assert calls == []

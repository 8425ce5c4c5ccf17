"""Data-parallel training: 2 gloo processes under torchrun equal one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gwinfer.errors import GwinferError
from gwinfer.training.distributed import init_distributed, launch_torchrun, select_device, torchrun_command

TOY = Path(__file__).with_name("_ddp_toy.py")
ARGS = [
    "--model",
    "mlp",
    "--n-train",
    "512",
    "--batch-size",
    "64",
    "--epochs",
    "2",
    "--optimizer",
    "adam",
    "--lr",
    "3e-3",
    "--seed",
    "5",
]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    return env


PORT_CLASH = ("address already in use", "eaddrinuse", "rendezvous")


def _run(cmd: list[str]) -> None:
    """Run ``cmd``; retry once if torchrun lost a race for a free port with another program."""
    for attempt in range(2):
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
        if proc.returncode == 0 or not any(w in proc.stderr.lower() for w in PORT_CLASH):
            break
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_ranks_agree_with_each_other_and_with_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(torchrun_command(2, [str(TOY), "--out", str(two), *ARGS], module=False))
    _run([sys.executable, str(TOY), "--out", str(one), *ARGS])
    r0, r1 = (torch.load(two / f"params_rank{r}.pt", weights_only=True) for r in (0, 1))
    ref = torch.load(one / "params_rank0.pt", weights_only=True)
    start = {k: v for k, v in torch.load(two / "best.pt", weights_only=True)["model_state"].items()}
    assert json.loads((two / "result.json").read_text())["world_size"] == 2
    assert json.loads((one / "result.json").read_text())["world_size"] == 1
    for k in ref:
        assert torch.equal(r0[k], r1[k]), k  # DDP keeps the replicas identical
        torch.testing.assert_close(r0[k], ref[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(start[k], r0[k], rtol=0, atol=0)  # best.pt holds the final (best) weights
    hist1 = json.loads((one / "result.json").read_text())["history"]
    hist2 = json.loads((two / "result.json").read_text())["history"]
    assert [h["step"] for h in hist2] == [h["step"] for h in hist1] == [8, 16]  # same steps per epoch
    for a, b in zip(hist1, hist2):
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)


def test_single_process_needs_no_process_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    assert not torch.distributed.is_initialized()
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(GwinferError, match="RANK"):
        init_distributed("cpu")


def test_torchrun_command_and_bad_nproc():
    cmd = torchrun_command(3, ["gwinfer.cli", "train", "--config", "c.yaml"])
    assert cmd[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=3",
        "-m",
        "gwinfer.cli",
        "train",
        "--config",
        "c.yaml",
    ]
    for bad in (0, 2.0, True):
        with pytest.raises(GwinferError, match="nproc"):
            launch_torchrun(bad, ["gwinfer.cli"])  # type: ignore[arg-type]
    with pytest.raises(GwinferError, match="device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(GwinferError, match="CUDA"):
            select_device("cuda")


def test_the_command_sets_its_own_thread_default():
    """``gwinfer`` runs one intra-op thread per process unless OMP_NUM_THREADS says otherwise."""
    import os
    import subprocess
    import sys

    code = "from gwinfer.cli.main import process_defaults; process_defaults(); import torch; print(torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_NUM_THREADS": "2"}, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.split()[-1] == "2"

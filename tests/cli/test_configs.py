"""The shipped configs (configs/, models/) read as YAML 1.2 without duplicate keys and name no absolute
path: their paths are relative to the file, so a fresh clone anywhere runs them (configs/sim-gw5d.yaml
named a path outside the repository once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT

from gwinfer.config import load_yaml

SHIPPED = sorted([*ROOT.joinpath("configs").rglob("*.yaml"), *ROOT.joinpath("models").rglob("*.yaml")])


def strings(node, where=""):
    """(dotted key, value) of every string in a YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node


def test_there_are_shipped_configs():
    assert len(SHIPPED) > 20 and ROOT / "configs" / "sim-gw5d.yaml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_reads_and_names_no_absolute_path(path: Path):
    raw = load_yaml(path)  # duplicate keys and YAML 1.1 exponent strings are refused / fixed here
    absolute = [(k, v) for k, v in strings(raw) if v.startswith("/") or v.startswith("~")]
    assert not absolute, f"{path.relative_to(ROOT)} names absolute paths: {absolute}"


def test_simulation_config_paths_resolve_against_the_file(tmp_path, monkeypatch):
    """configs/sim-gw5d.yaml's PSD (``../../shared/...``) is the same file from any working directory."""
    from gwinfer.data.simulate import load_simulation_config

    monkeypatch.chdir(tmp_path)
    config = load_simulation_config(ROOT / "configs" / "sim-gw5d.yaml")
    expected = (ROOT / "configs" / "../../shared/external/psd/aLIGO_ZERO_DET_high_P_psd.txt").resolve()
    assert Path(config.psd).resolve() == expected

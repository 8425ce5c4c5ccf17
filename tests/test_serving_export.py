"""Export to a Triton-style repository: numerics against torch, config.pbtxt round trip, versions, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from conftest import tiny_point_model

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models.registry import save_model  # noqa: E402
from gwinfer.provenance import sha256_file  # noqa: E402
from gwinfer.serving.export import export_model, run_exported  # noqa: E402
from gwinfer.serving.repository import (  # noqa: E402
    config_specs,
    format_config,
    list_versions,
    parse_config,
    read_config,
)

T = 64
GRID = {"t_start": 0.0, "t_end": 126.0, "dt": 2.0}


def tiny_model(seed: int = 0):
    return tiny_point_model(T, seed)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "tiny" / "model.pt"
    save_model(path, tiny_model(), metadata={"time_grid": GRID, "approximant": "IMRPhenomT"})
    return path


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_torch(model_file, tmp_path, fmt):
    from gwinfer.models.registry import load_model

    dest = export_model(model_file, tmp_path / "repo", fmt=fmt)
    name = "tiny"
    assert dest == tmp_path / "repo" / name / "1"
    model_path = dest / ("model.onnx" if fmt == "onnx" else "model.pt")
    assert model_path.is_file() and (tmp_path / "repo" / name / "config.pbtxt").is_file()

    model, _ = load_model(model_file)
    x = torch.randn(7, 2, T, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ref = model(x).numpy()
    got = run_exported(model_path, x.numpy())
    assert got.shape == (7, 3) and got.dtype == np.float32
    assert np.max(np.abs(got - ref)) < 1e-4
    # the batch axis is dynamic
    assert np.max(np.abs(run_exported(model_path, x[:1].numpy()) - ref[:1])) < 1e-4

    info = json.loads((dest / "gwinfer.json").read_text())
    assert info["source_sha256"] == sha256_file(model_file)
    assert info["time_grid"] == GRID and info["approximant"] == "IMRPhenomT"
    assert 0.0 <= info["max_abs_diff"] < 1e-4 and info["max_abs_diff"] <= info["check"]["limit"]
    assert info["check"]["float32_error"] >= 0.0
    assert info["gwinfer_version"] and info["config"]["format"] == fmt


def test_config_roundtrips_and_matches_model(model_file, tmp_path):
    import onnx

    dest = export_model(model_file, tmp_path / "repo", name="rb", max_batch_size=32)
    cfg = read_config(tmp_path / "repo" / "rb")
    assert parse_config(format_config(cfg)) == cfg
    assert cfg["name"] == "rb" and cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 32
    assert cfg["instance_group"] == [{"kind": "KIND_CPU", "count": 1}]
    assert "dynamic_batching" in cfg
    inputs, outputs = config_specs(cfg)
    assert [(t.name, t.datatype, t.dims) for t in inputs] == [("waveform", "FP32", (2, T))]
    assert [(t.name, t.datatype, t.dims) for t in outputs] == [("theta", "FP32", (3,))]
    # the graph agrees with the config: same names, dims after a symbolic batch axis
    graph = onnx.load(str(dest / "model.onnx")).graph

    def dims(v):
        return [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]

    assert [(v.name, dims(v)) for v in graph.input] == [("waveform", [-1, 2, T])]
    assert [(v.name, dims(v)) for v in graph.output] == [("theta", [-1, 3])]
    ts = export_model(model_file, tmp_path / "repo", name="rb_ts", fmt="torchscript")
    cfg_ts = read_config(ts.parent)
    assert cfg_ts["platform"] == "pytorch_libtorch"
    assert [t["name"] for t in cfg_ts["input"]] == ["waveform__0"]
    assert [t["name"] for t in cfg_ts["output"]] == ["theta__0"]


def test_parser_reads_hand_written_triton_config():
    text = """
    # a comment
    name: "m\\"x"   # trailing comment
    platform: "onnxruntime_onnx"
    max_batch_size: 8
    input { name: "a" data_type: TYPE_FP32 dims: [ 2, -1 ] }
    input { name: "b", data_type: TYPE_INT64, dims: 4 }
    output [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] } ]
    dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
    instance_group [ { kind: KIND_CPU, count: 2 } ]
    optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }
    parameters { key: "x" value: { string_value: "1.5e3" } }
    version_policy: { latest: { num_versions: 2 } }
    """
    cfg = parse_config(text)
    assert cfg["name"] == 'm"x' and cfg["max_batch_size"] == 8
    assert [i["name"] for i in cfg["input"]] == ["a", "b"]
    assert cfg["input"][0]["dims"] == [2, -1] and cfg["input"][1]["dims"] == [4]
    assert cfg["output"][0]["dims"] == [3]
    assert cfg["dynamic_batching"] == {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100}
    assert cfg["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]
    assert cfg["version_policy"] == {"latest": {"num_versions": 2}}
    inputs, _ = config_specs(cfg)
    assert [(t.name, t.datatype, t.dims) for t in inputs] == [("a", "FP32", (2, -1)), ("b", "INT64", (4,))]
    for bad in ('name: "unterminated', "input { name: 'a' ", "max_batch_size: 8 }", "@"):
        with pytest.raises(GwinferError):
            parse_config(bad)


def test_versions_and_refusals(model_file, tmp_path):
    repo = tmp_path / "repo"
    assert export_model(model_file, repo, name="m").name == "1"
    assert export_model(model_file, repo, name="m").name == "2"
    assert export_model(model_file, repo, name="m", version=7).name == "7"
    assert list_versions(repo / "m") == [1, 2, 7]
    assert export_model(model_file, repo, name="m").name == "8"
    with pytest.raises(GwinferError, match="already exists"):
        export_model(model_file, repo, name="m", version=2)
    with pytest.raises(GwinferError, match="another --name"):
        export_model(model_file, repo, name="m", fmt="torchscript")
    with pytest.raises(GwinferError, match="export format"):
        export_model(model_file, repo, name="x", fmt="tensorrt")
    with pytest.raises(GwinferError, match="model name"):
        export_model(model_file, repo, name="../evil")
    with pytest.raises(GwinferError, match="max_batch_size"):
        export_model(model_file, repo, name="x", max_batch_size=0)
    with pytest.raises(GwinferError, match="does not exist"):
        export_model(tmp_path / "missing.pt", repo)
    # nothing half-written is left behind
    assert sorted(p.name for p in (repo / "m").iterdir()) == ["1", "2", "7", "8", "config.pbtxt"]


def test_cli_export(model_file, tmp_path, capsys):
    from gwinfer.serving.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", "--model", str(model_file.parent), "--repo", str(tmp_path / "r"),
                              "--format", "torchscript", "--max-batch-size", "4"])
    assert args.func(args) == 0
    assert "exported tiny version 1" in capsys.readouterr().out
    assert read_config(tmp_path / "r" / "tiny")["max_batch_size"] == 4
    args = parser.parse_args(["serve", "--repo", "r", "--port", "9"])
    assert args.host == "127.0.0.1" and args.token is None and args.port == 9

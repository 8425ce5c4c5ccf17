"""Export to a Triton-style repository: numerics against torch, config.pbtxt round trip, versions, CLI."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from support import tiny_point_model

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.models import save_model  # noqa: E402
from gwinfer.provenance import sha256_file  # noqa: E402
from gwinfer.serving.export.graph import run_exported  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.repository.config import format_config, parse_config, read_config  # noqa: E402
from gwinfer.serving.repository.layout import list_versions  # noqa: E402
from gwinfer.serving.repository.specs import config_specs  # noqa: E402

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
    from gwinfer.models import load_model

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
    from gwinfer.cli.serving import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "export",
            "--model",
            str(model_file.parent),
            "--repo",
            str(tmp_path / "r"),
            "--format",
            "torchscript",
            "--max-batch-size",
            "4",
        ]
    )
    assert args.func(args) == 0
    assert "exported tiny version 1" in capsys.readouterr().out
    assert read_config(tmp_path / "r" / "tiny")["max_batch_size"] == 4
    args = parser.parse_args(
        ["export", "--model", str(model_file.parent), "--repo", str(tmp_path / "py"), "--backend", "python"]
    )
    assert args.func(args) == 0
    assert "(onnx for Triton's python backend)" in capsys.readouterr().out
    assert (tmp_path / "py" / "tiny" / "1" / "model.py").is_file()
    args = parser.parse_args(["serve", "--repo", "r", "--port", "9"])
    assert args.host == "127.0.0.1" and args.token is None and args.port == 9


# --- Triton Python backend (backend="python"): config, files, and model.py with a stand-in for Triton ---
class _FakePbUtils:
    """The parts of Triton's triton_python_backend_utils that gwinfer's model.py uses (for tests)."""

    class TritonModelException(Exception):
        pass

    class TritonError:
        def __init__(self, message):
            self.message = message

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None):
            self.outputs = {t.name: t.array for t in output_tensors}
            self.error = error

    @staticmethod
    def triton_string_to_numpy(data_type):
        return {"TYPE_FP32": np.float32, "TYPE_FP64": np.float64}[data_type]

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request.get(name)


def _load_python_model(version_dir, monkeypatch, instance_kind="CPU"):
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _FakePbUtils)
    spec = importlib.util.spec_from_file_location("gwinfer_test_triton_model", version_dir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = read_config(version_dir.parent)
    instance = module.TritonPythonModel()
    instance.initialize(
        {
            "model_config": json.dumps(cfg),
            "model_repository": str(version_dir.parent),
            "model_version": version_dir.name,
            "model_instance_kind": instance_kind,
            "model_instance_device_id": "0",
        }
    )
    return instance


def test_python_backend_export(model_file, tmp_path):
    from gwinfer.serving.triton import PYTHON_MODEL, STREAM_MODEL

    repo = tmp_path / "repo"
    dest = export_model(model_file, repo, backend="python", max_batch_size=16)
    assert sorted(p.name for p in dest.iterdir()) == ["gwinfer.json", "model.onnx", "model.py"]
    assert (dest / "model.py").read_bytes() == PYTHON_MODEL.read_bytes()
    cfg = read_config(repo / "tiny")
    assert cfg["backend"] == "python" and "platform" not in cfg
    assert 'backend: "python"' in (repo / "tiny" / "config.pbtxt").read_text()
    native = read_config(export_model(model_file, tmp_path / "native", max_batch_size=16).parent)
    # everything but platform/backend is the native export's config
    assert {k: v for k, v in cfg.items() if k != "backend"} == {k: v for k, v in native.items() if k != "platform"}
    assert json.loads((dest / "gwinfer.json").read_text())["config"]["backend"] == "python"
    # the same model.onnx as the native export (same exporter, same weights)
    x = np.random.default_rng(0).standard_normal((3, 2, T)).astype(np.float32)
    np.testing.assert_array_equal(
        run_exported(dest / "model.onnx", x), run_exported(tmp_path / "native" / "tiny" / "1" / "model.onnx", x)
    )
    assert export_model(model_file, repo, backend="python").name == "2"
    with pytest.raises(GwinferError, match="another --name"):
        export_model(model_file, repo)  # native into a python-backend name
    with pytest.raises(GwinferError, match="ONNX"):
        export_model(model_file, repo, name="ts", fmt="torchscript", backend="python")
    # streaming entries for Triton: model.py keeps the snapshots, the sequence batcher sends the controls
    sdest = export_model(model_file, repo, backend="python", stream_stride=16)  # tiny-stream
    assert (sdest / "model.py").read_bytes() == STREAM_MODEL.read_bytes()
    seq = read_config(sdest.parent)["sequence_batching"]
    assert [c["control"][0]["kind"] for c in seq["control_input"]] == [
        "CONTROL_SEQUENCE_START",
        "CONTROL_SEQUENCE_END",
        "CONTROL_SEQUENCE_CORRID",
    ] and "oldest" in seq
    with pytest.raises(GwinferError, match="backend"):
        export_model(model_file, repo, name="x", backend="tensorrt")


def test_python_backend_model_py_batches_requests(model_file, tmp_path, monkeypatch):
    """model.py (run here with a stand-in for Triton's pb_utils): concatenated batch, split per request,
    a malformed request answered with its own error, config/graph mismatches refused at initialize."""
    dest = export_model(model_file, tmp_path / "repo", backend="python")
    model = _load_python_model(dest, monkeypatch)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((b, 2, T)).astype(np.float32) for b in (1, 3, 2)]
    requests = [{"waveform": _FakePbUtils.Tensor("waveform", x)} for x in xs]
    requests.insert(1, {"waveform": _FakePbUtils.Tensor("waveform", xs[0][:, :, :-1])})  # wrong shape
    requests.append({})  # no input
    runs = []
    original = model.session.run
    model.session.run = lambda names, feed: runs.append(len(feed["waveform"])) or original(names, feed)
    responses = model.execute(requests)
    assert runs == [6]  # the three good requests in one run
    assert len(responses) == 5
    assert "shape [1, 2, 63]" in responses[1].error.message and "missing" in responses[4].error.message
    for r, x in zip([responses[0], responses[2], responses[3]], xs):
        assert r.error is None and r.outputs["theta"].dtype == np.float32
        np.testing.assert_allclose(r.outputs["theta"], run_exported(dest / "model.onnx", x), rtol=1e-6, atol=1e-6)
    single = model.execute([requests[2]])[0]
    np.testing.assert_allclose(single.outputs["theta"], responses[2].outputs["theta"], rtol=1e-6, atol=1e-6)
    model.finalize()
    # GPU instances fall back to the CPU provider when onnxruntime has no CUDA
    assert _load_python_model(dest, monkeypatch, "GPU").session.get_providers()[-1] == "CPUExecutionProvider"
    # a config whose tensors the graph does not have is refused when Triton loads the model
    cfg_path = dest.parent / "config.pbtxt"
    cfg_path.write_text(cfg_path.read_text().replace('"theta"', '"other"'))
    with pytest.raises(_FakePbUtils.TritonModelException, match="do not match"):
        _load_python_model(dest, monkeypatch)


def test_gwinfer_server_serves_python_backend_export(model_file, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    httpclient = pytest.importorskip("tritonclient.http")
    from gwinfer.serving.server.run import Server

    repo = tmp_path / "repo"
    dest = export_model(model_file, repo, backend="python")
    x = np.random.default_rng(2).standard_normal((2, 2, T)).astype(np.float32)
    with Server(repo) as server:
        c = httpclient.InferenceServerClient(server.url)
        try:
            assert c.get_model_metadata("tiny")["platform"] == "python"  # what Triton reports
            inp = httpclient.InferInput("waveform", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            got = c.infer("tiny", [inp]).as_numpy("theta")
        finally:
            c.close()
    np.testing.assert_allclose(got, run_exported(dest / "model.onnx", x), rtol=1e-6, atol=1e-6)

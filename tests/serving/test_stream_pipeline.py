"""Streaming posterior entries and the strain replay pipeline (``gwinfer stream``) on a real server.

A tiny fitted (untrained) IAF on two-detector strain (2, 2048) at 1024 Hz carrying a simulation config is
exported as a streaming entry (stride 1024 = 1 s) and served by ``gwinfer serve`` on 127.0.0.1; the real
GWOSC GW150914 files are replayed through it. References are independent of the serving path: the plain
(non-streaming) export of the same estimator in onnxruntime in-process and the torch sampler, on the same
whitened windows and the same noise.
"""

from __future__ import annotations

import asyncio
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
pytest.importorskip("tritonclient.http")
pytest.importorskip("gwpy")

from gwinfer.cli import main  # noqa: E402
from gwinfer.data.simulate import SimulationConfig  # noqa: E402
from gwinfer.errors import GwinferError  # noqa: E402
from gwinfer.external import external_dir  # noqa: E402
from gwinfer.models import build_estimator, save_estimator  # noqa: E402
from gwinfer.physics.priors import load_prior  # noqa: E402
from gwinfer.provenance import sha256_file  # noqa: E402
from gwinfer.serving.client import AsyncServedModel  # noqa: E402
from gwinfer.serving.export.entry import export_info  # noqa: E402
from gwinfer.serving.export.model import export_model  # noqa: E402
from gwinfer.serving.export.posterior import NoiseSampler, run_graph  # noqa: E402
from gwinfer.serving.replay import chunk_noise, replay_strain, stream_strain, summarize  # noqa: E402
from gwinfer.serving.server.run import Server  # noqa: E402

STRAIN = external_dir() / "strain"
H1 = STRAIN / "H-H1_LOSC_4_V2-1126259446-32.hdf5"
L1 = STRAIN / "L-L1_LOSC_4_V2-1126259446-32.hdf5"
GPS = 1126259462.44
NAMES = ["chirp_mass", "mass_ratio", "luminosity_distance", "geocent_time"]
FS, N = 1024.0, 2048

pytestmark = pytest.mark.skipif(not H1.is_file(), reason=f"GWOSC strain not found in {STRAIN}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("stream-pipeline")
    cfg = SimulationConfig(
        prior="hl-o1",
        n=10,
        fs=FS,
        duration=2.0,
        detectors=("H1", "L1"),
        f_min=20.0,
        f_max=400.0,
        parameters=tuple(NAMES),
        gps_start=GPS - 1.5,
        time_offset=1.5,
    )
    est = build_estimator(
        {
            "kind": "iaf",
            "config": {
                "embedding": {"kind": "svd", "components": 16, "hidden": [16], "context_dim": 8},
                "transforms": 2,
                "hidden": [16],
            },
        },
        len(NAMES),
        (2, N),
    )
    theta = torch.tensor([[28.0, 0.8, 500.0, 1.5]]) + torch.tensor([3.0, 0.1, 100.0, 0.01]) * torch.randn(
        64, len(NAMES)
    )
    est.fit_standardization(theta, torch.randn(64, 2, N))
    path = save_estimator(
        root / "hl-tiny" / "model.pt", est.eval(), metadata={"names": NAMES, "simulation": json.loads(cfg.to_json())}
    )
    repo = root / "repo"
    plain = export_model(path, repo)  # hl-tiny: the offline reference graph
    stream = export_model(path, repo, stream_stride=1024)  # hl-tiny-stream
    export_model(path, repo, name="hl-tiny-s512", stream_stride=512)
    server = Server(repo).start()
    yield {"root": root, "est": est, "server": server, "plain": plain / "model.onnx", "stream": stream, "cfg": cfg}
    server.stop()


def plain_served(setup, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, dict]:
    """(samples, response parameters) of the plain entry ``hl-tiny`` served on window ``x`` and noise ``z``."""
    import tritonclient.http as httpclient

    c = httpclient.InferenceServerClient(setup["server"].url)
    try:
        ins = []
        for name, a in (("strain", x), ("noise", z)):
            t = httpclient.InferInput(name, list(a.shape), "FP32")
            t.set_data_from_numpy(np.ascontiguousarray(a))
            ins.append(t)
        res = c.infer("hl-tiny", ins)
        return res.as_numpy("samples"), res.get_response()["parameters"]
    finally:
        c.close()


def test_export_of_a_streaming_posterior(setup):
    info = export_info(setup["stream"])
    assert info["streaming"]["kernel"] == N and info["streaming"]["stride"] == 1024
    assert info["streaming"]["forwarded_inputs"] == ["noise"]

    async def meta():
        async with await AsyncServedModel.open(setup["server"].url, "hl-tiny-stream") as m:
            return m.inputs, m.outputs, m.parameters

    inputs, outputs, params = asyncio.run(meta())
    assert inputs == {"update": ("FP32", [-1, 2, 1024]), "noise": ("FP32", [-1, -1, len(NAMES)])}
    assert outputs == {
        "samples": ("FP32", [-1, -1, len(NAMES)]),
        "log_prob": ("FP32", [-1, -1]),
        "ready": ("BOOL", [-1, 1]),
    }
    assert params["detectors"] == "H1,L1" and float(params["sample_rate"]) == FS
    assert params["parameter_names"] == ",".join(NAMES) and params["stream_stride"] == "1024"


def test_replay_equals_offline_on_the_same_windows_and_noise(setup, tmp_path):
    files = {"H1": H1, "L1": L1}
    out = tmp_path / "preds.csv"
    res = stream_strain(
        setup["server"].url, "hl-tiny-stream", files, out, n_samples=200, seed=3, start=GPS - 1.5 - 14.0, psd_gps=GPS
    )
    rows = res["rows"]
    assert [r["ready"] for r in rows[:3]] == [False, True, True] and all(r["ready"] for r in rows[1:])
    spec, strain, i0 = res["spec"], res["strain"], res["start_index"]
    # the window ending 0.5 s after the trigger (as gwinfer analyze cuts it) is chunk 15
    k = 15
    assert abs(rows[k]["gps_end"] - (GPS + 0.5)) < 1.0 / FS
    prior = load_prior("hl-o1", time_offset=1.5)  # the model's training prior, in its coordinates
    assert rows[0]["prior_acceptance"] != rows[0]["prior_acceptance"]  # NaN: the window is not full yet
    for k in (1, 15, len(rows) - 1):
        e = i0 + (k + 1) * spec.stride
        x, z = strain[None, :, e - N : e], chunk_noise(3, k, 200, len(NAMES))
        # the plain (non-streaming) entry served on the same window and noise: the same draws, prior applied
        ref, params = plain_served(setup, x, z)
        want = summarize(ref[0], NAMES, rows[k]["gps_end"] - 2.0)
        assert {c: rows[k][c] for c in want} == pytest.approx(want, rel=1e-6, abs=1e-6)
        assert rows[k]["prior_acceptance"] == params["prior_acceptance"] and 0.5 < params["prior_acceptance"] <= 1
        # independently: every draw is inside the training prior, and the graph's own draws inside come first
        assert np.all(np.isfinite(prior.ln_prob({c: ref[0][:, i].astype(float) for i, c in enumerate(NAMES)}, axis=0)))
        raw, _ = run_graph(setup["plain"], x, z)  # plain posterior graph, in-process
        ok = np.isfinite(prior.ln_prob({c: raw[0][:, i].astype(float) for i, c in enumerate(NAMES)}, axis=0))
        np.testing.assert_allclose(ref[0][: ok.sum()], raw[0][ok], rtol=1e-6, atol=1e-5)
        with torch.no_grad():
            ts, _ = NoiseSampler(setup["est"])(torch.from_numpy(x), torch.from_numpy(z))
        np.testing.assert_allclose(raw[0], ts.numpy()[0], rtol=1e-4, atol=1e-3)
    # the CSV: provenance line with the input hashes, then the rows
    lines = out.read_text().splitlines()
    record = json.loads(lines[0][2:])
    assert record["kind"] == "stream-posterior" and record["gwinfer_version"]
    assert {p["sha256"] for p in record["parents"]} == {sha256_file(H1), sha256_file(L1)}
    table = list(csv.DictReader(lines[1:]))
    assert len(table) == len(rows) and float(table[15]["chirp_mass_median"]) == rows[15]["chirp_mass_median"]
    assert {f"{n}_{q}" for n in NAMES for q in ("median", "q05", "q95")} <= set(table[0])


def test_cli_hdf5_and_bad_input(setup, tmp_path, capsys):
    h5py = pytest.importorskip("h5py")
    url = setup["server"].url
    args = [
        "stream",
        "--url",
        url,
        "--model",
        "hl-tiny-stream",
        "--h1",
        str(H1),
        "--l1",
        str(L1),
        "--n-samples",
        "50",
        "--start",
        str(GPS - 1.5 - 3.0),
    ]
    assert main([*args, "--out", str(tmp_path / "p.h5")]) == 0
    assert "wrote" in capsys.readouterr().out
    with h5py.File(tmp_path / "p.h5") as f:
        assert f["gps_end"].shape == (len(f["ready"]),) and json.loads(f.attrs["provenance"])["config"]["seed"] == 0
    bad = [
        (["--h1", str(H1)], "the model takes strain of ['H1', 'L1']; got files for ['H1']"),
        (["--h1", str(H1), "--l1", str(L1), "--v1", str(L1)], "got files for ['H1', 'L1', 'V1']"),
        (["--h1", str(H1), "--l1", str(L1), "--chunk", "0.5"], "does not match the stride"),
        (["--h1", str(H1), "--l1", str(L1), "--model", "hl-tiny"], "is not a streaming posterior entry"),
        (["--h1", str(H1), "--l1", str(L1), "--model", "nope"], "cannot read metadata of model 'nope'"),
    ]
    for extra, message in bad:
        argv = ["stream", "--url", url, "--model", "hl-tiny-stream", "--out", str(tmp_path / "x.csv"), *extra]
        if "--model" in extra:
            argv = ["stream", "--url", url, "--out", str(tmp_path / "x.csv"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("gwinfer: error:") and message in err and "\n" not in err
    assert not (tmp_path / "x.csv").exists()
    # the stride of the entry decides the chunk: 0.5 s works on the 512-sample entry
    res = asyncio.run(
        replay_strain(url, "hl-tiny-s512", {"H1": H1, "L1": L1}, chunk=0.5, n_samples=10, start=GPS - 4.0)
    )
    assert [r["ready"] for r in res["rows"][:4]] == [False, False, False, True]


def test_server_refuses_bad_stream_requests(setup):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    c = httpclient.InferenceServerClient(setup["server"].url)

    def req(update, noise, **seq):
        ins = []
        for name, a in (("update", update), ("noise", noise)):
            t = httpclient.InferInput(name, list(a.shape), "FP32")
            t.set_data_from_numpy(a)
            ins.append(t)
        return c.infer("hl-tiny-stream", ins, **seq)

    u, z = np.zeros((1, 2, 1024), np.float32), np.zeros((1, 5, len(NAMES)), np.float32)
    with pytest.raises(InferenceServerException, match="shape"):
        req(np.zeros((1, 2, 512), np.float32), z, sequence_id=7, sequence_start=True)  # chunk != stride
    with pytest.raises(InferenceServerException, match="shape"):
        req(np.zeros((1, 1, 1024), np.float32), z, sequence_id=7, sequence_start=True)  # one detector
    with pytest.raises(InferenceServerException, match="not live"):
        req(u, z, sequence_id=7)
    with pytest.raises(InferenceServerException, match="sequence_id"):
        req(u, z)
    r = req(u, z, sequence_id=7, sequence_start=True, sequence_end=True)
    assert r.as_numpy("samples").shape == (1, 5, len(NAMES)) and not r.as_numpy("ready")[0, 0]
    c.close()
    with pytest.raises(GwinferError, match="n_samples"):
        asyncio.run(replay_strain(setup["server"].url, "hl-tiny-stream", {"H1": H1, "L1": L1}, n_samples=0))


def test_a_graph_only_server_gets_the_prior_applied_by_the_replay(setup, tmp_path):
    """A server that runs only the graph (a real Triton: the entry's gwinfer.json has no prior record, the
    config still carries the prior): the replay drops the draws outside the prior and reports the fraction."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(setup["stream"].parent, repo / "graph-only-stream")
    info_path = repo / "graph-only-stream" / "1" / "gwinfer.json"
    info = json.loads(info_path.read_text())
    info["posterior"]["prior"] = None
    info_path.write_text(json.dumps(info))
    server = Server(repo).start()
    try:
        kw = dict(n_samples=200, seed=3, start=GPS - 1.5 - 14.0, psd_gps=GPS, keep_samples=True)
        files = {"H1": H1, "L1": L1}
        ours = asyncio.run(replay_strain(setup["server"].url, "hl-tiny-stream", files, **kw))
        graph_only = asyncio.run(replay_strain(server.url, "graph-only-stream", files, **kw))
    finally:
        server.stop()
    prior = load_prior("hl-o1", time_offset=1.5)
    spec, strain, i0 = graph_only["spec"], graph_only["strain"], graph_only["start_index"]
    accepted = []
    for k in (1, 15):
        e = i0 + (k + 1) * spec.stride
        raw, _ = run_graph(setup["plain"], strain[None, :, e - N : e], chunk_noise(3, k, 200, len(NAMES)))
        ok = np.isfinite(prior.ln_prob({c: raw[0][:, i].astype(float) for i, c in enumerate(NAMES)}, axis=0))
        np.testing.assert_allclose(graph_only["samples"][k], raw[0][ok], rtol=1e-6, atol=1e-5)  # the draws inside
        assert graph_only["rows"][k]["prior_acceptance"] == pytest.approx(ok.mean())
        # gwinfer serve replaced the others instead: its first draws are the same
        np.testing.assert_allclose(ours["samples"][k][: ok.sum()], raw[0][ok], rtol=1e-6, atol=1e-5)
        assert ours["samples"][k].shape == (200, len(NAMES))
        accepted.append(ok.mean())
    assert min(accepted) < 1.0  # the tiny model's draws do leave the prior


def test_windows_refused_for_the_prior_are_rows_and_the_stream_goes_on(setup, tmp_path, capsys):
    """A prior no draw lands in: every full window is answered 422; the replay keeps those windows as rows
    without quantiles (acceptance 0), the sequence goes on to the end, and the command warns."""
    from gwinfer.physics.priors import prior_path

    text = prior_path("hl-o1").read_text().replace("minimum=100, maximum=1500", "minimum=5000, maximum=5001")
    meta = {"names": NAMES, "simulation": json.loads(setup["cfg"].to_json()), "prior_text": text}
    path = save_estimator(tmp_path / "hl-narrow" / "model.pt", setup["est"], metadata=meta)
    repo = tmp_path / "repo"
    export_model(path, repo, stream_stride=1024)  # hl-narrow-stream
    server = Server(repo).start()
    try:
        args = ["stream", "--url", server.url, "--model", "hl-narrow-stream", "--h1", str(H1), "--l1", str(L1)]
        out = tmp_path / "p.csv"
        assert main([*args, "--n-samples", "20", "--start", str(GPS - 1.5 - 3.0), "--out", str(out)]) == 0
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert "windows had too few posterior draws inside the training prior" in captured.err
    table = list(csv.DictReader(out.read_text().splitlines()[1:]))
    assert [r["ready"] for r in table[:2]] == ["0", "1"] and len(table) > 3
    for r in table[1:]:  # every full window refused, none lost
        assert float(r["prior_acceptance"]) == 0.0 and r["chirp_mass_median"] == "nan"
    assert table[0]["prior_acceptance"] == "nan" and table[0]["chirp_mass_median"] != "nan"

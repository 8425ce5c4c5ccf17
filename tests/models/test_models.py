"""Tests of gwinfer.models: shapes, gradients, receptive field, heads, PCA, save/load, export, overfit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gwinfer.errors import GwinferError
from gwinfer.models import (
    HEADS,
    PCABasis,
    ReducedBasisConfig,
    ReducedBasisModel,
    Standardizer,
    WaveNet,
    WaveNetConfig,
    build_model,
    load_model,
    make_head,
    model_payload,
    save_model,
)
from gwinfer.models.point.features import instantaneous_frequency

T = 200  # samples of the small test grid
DT = 2.0


def synthetic(n: int, n_samples: int = T, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy chirps h22 = A e^{-i phi} whose frequency/amplitude depend on (q, s1, s2); (theta, x) float32."""
    g = torch.Generator().manual_seed(seed)
    q = 1.0 + 7.0 * torch.rand(n, 1, generator=g, dtype=torch.float64)
    s = 1.6 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 0.8
    eta = q / (1 + q) ** 2
    chi = (q * s[:, :1] + s[:, 1:]) / (1 + q)
    tau = 1.05 - torch.linspace(0.0, 1.0, n_samples, dtype=torch.float64)[None, :]
    omega = 0.08 * (1 + 2 * eta + 0.3 * chi + 0.1 * s[:, 1:]) * tau ** (-0.375)  # rad/M
    phase = torch.cumsum(omega * DT, dim=1)
    amp = eta * (omega / 0.08) ** (2 / 3)
    x = torch.stack([amp * torch.cos(phase), -amp * torch.sin(phase)], dim=1)
    return torch.cat([q, s], dim=1).float(), x.float()


def tiny_wavenet(head: str = "physics", **kw) -> WaveNet:
    cfg = dict(
        channels=8,
        skip_channels=8,
        out_channels=4,
        kernel_size=3,
        max_dilation=8,
        n_stacks=1,
        last_n=8,
        leaf_hidden=(16,),
        head=head,
    )
    cfg.update(kw)
    return WaveNet(WaveNetConfig(**cfg), n_samples=T)


def tiny_rb(head: str = "physics", **kw) -> ReducedBasisModel:
    cfg = dict(n_components=6, hidden=32, depth=2, head=head, dt=DT)
    cfg.update(kw)
    return ReducedBasisModel(ReducedBasisConfig(**cfg), n_samples=T)


BUILDERS = {
    "wavenet": tiny_wavenet,
    "wavenet_ampphase_ds3": lambda head: tiny_wavenet(head, representation="ampphase", downsample=3, last_n=4),
    "wavenet_ampfreq_ds2": lambda head: tiny_wavenet(head, representation="ampfreq", dt=DT, downsample=2, last_n=4),
    "reduced_basis": tiny_rb,
}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return synthetic(64, seed=1)


def fitted(name: str, head: str, data) -> torch.nn.Module:
    torch.manual_seed(0)
    model = BUILDERS[name](head)
    model.fit_standardization(*data)
    return model


@pytest.mark.parametrize("name", list(BUILDERS))
def test_output_shapes(name, data):
    theta, x = data
    model = fitted(name, "physics", data)
    assert model.predict(x[:5]).shape == (5, 3)
    assert model(x[:5]).dtype == torch.float32
    assert model.loss(theta[:7], x[:7]).shape == (7,)
    assert (model.predict(x[:5])[:, 0] >= 1.0).all()


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", list(BUILDERS))
def test_gradients_reach_every_parameter(name, head, data):
    theta, x = data
    model = fitted(name, head, data)
    model.train()
    model.loss(theta[:16], x[:16]).mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} has an all-zero gradient"


def test_wavenet_is_noncausal_with_expected_receptive_field():
    torch.manual_seed(0)
    model = tiny_wavenet().eval()
    half = (model.receptive_field - 1) // 2
    assert model.receptive_field == 1 + 2 * (1 + 2 + 4 + 8)
    x = torch.randn(1, 2, T)
    j = 100
    x2 = x.clone()
    x2[0, :, j] += 1.0
    with torch.no_grad():
        d = (model.root(x2) - model.root(x)).abs().sum(dim=(0, 1))
    assert d[j - half] > 0  # an output *before* the change sees it: non-causal
    assert d[j + half] > 0
    assert d[j - half - 1] == 0 and d[j + half + 1] == 0  # nothing beyond the receptive field
    assert model.root(x).shape[-1] == T


def test_wavenet_downsample_length():
    model = tiny_wavenet(downsample=3, last_n=4)
    assert model.length == -(-T // 3)
    assert model.root(torch.randn(2, 2, T)).shape == (2, 4, model.length)
    with pytest.raises(GwinferError, match="last_n"):
        tiny_wavenet(downsample=4, last_n=60)


@pytest.mark.parametrize("name", ["wavenet_ampphase_ds3", "reduced_basis"])
def test_save_load_roundtrip(name, data, tmp_path):
    theta, x = data
    model = fitted(name, "chi", data).eval()
    meta = {"time_grid": {"t_start": -398.0, "t_end": 0.0, "dt": DT}, "approximant": "toy", "n": [1, 2]}
    path = save_model(tmp_path / "m.pt", model, metadata=meta)
    raw = torch.load(path, weights_only=True)
    assert raw["model_spec"]["kind"] == model.kind
    loaded, meta2 = load_model(path)
    assert meta2["approximant"] == "toy" and meta2["gwinfer_version"]
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded.predict(x), model.predict(x))
    # a trainer checkpoint: the same keys plus optimiser state, no "format" entry
    ckpt = {
        "model_state": model.state_dict(),
        "model_spec": model.spec(),
        "metadata": meta,
        "optimizer_state": {"step": 3},
        "epoch": 2,
    }
    torch.save(ckpt, tmp_path / "ckpt.pt")
    loaded2, _ = load_model(tmp_path / "ckpt.pt")
    with torch.no_grad():
        assert torch.equal(loaded2.predict(x), model.predict(x))


def test_load_errors(data, tmp_path):
    model = fitted("reduced_basis", "physics", data)
    with pytest.raises(GwinferError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(GwinferError, match="not a gwinfer model file"):
        load_model(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(GwinferError, match="not a gwinfer model file"):
        load_model(tmp_path / "other.pt")
    payload = model_payload(model, {})
    payload["model_spec"] = dict(payload["model_spec"], kind="transformer")
    torch.save(payload, tmp_path / "kind.pt")
    with pytest.raises(GwinferError, match="unknown model kind"):
        load_model(tmp_path / "kind.pt")
    payload = model_payload(model, {})
    payload["model_spec"]["config"]["hidden"] = 64
    torch.save(payload, tmp_path / "shape.pt")
    with pytest.raises(GwinferError, match="state_dict does not match"):
        load_model(tmp_path / "shape.pt")
    payload = model_payload(model, {})
    del payload["model_state"]["trunk.0.weight"]
    torch.save(payload, tmp_path / "missing.pt")
    with pytest.raises(GwinferError, match="state_dict does not match"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(GwinferError, match="plain values"):
        save_model(tmp_path / "bad.pt", model, metadata={"x": np.zeros(2)})
    assert not (tmp_path / "bad.pt").exists()


def test_build_model_from_spec(data):
    model = fitted("wavenet", "direct", data)
    again = build_model(model.spec(), n_samples=T)
    assert again.config == model.config and type(again) is WaveNet
    with pytest.raises(GwinferError, match="unknown setting"):
        build_model({"kind": "wavenet", "config": {"chanels": 4}}, n_samples=T)
    with pytest.raises(GwinferError, match="head"):
        build_model({"kind": "reduced_basis", "config": {"head": "nope"}}, n_samples=T)


def numpy_head_coords(head: str, theta: np.ndarray) -> np.ndarray:
    q, s1, s2 = theta.T.astype(np.float64)
    if head == "physics":
        return np.stack([q, (q * s1 + s2) / (1 + q), (1 + 3 / (4 * q)) * s1 + (1 + 3 * q / 4) * s2], 1)
    if head == "direct":
        return np.stack([q, s1, s2], 1)
    return np.stack([np.log(q), (q * s1 + s2) / (1 + q), (s1 - q * s2) / (1 + q)], 1)


@pytest.mark.parametrize("head", HEADS)
def test_targets_standardised_like_numpy(head, data):
    theta, _ = data
    model = fitted("reduced_basis", head, data)
    z = model.head.targets(theta).double().numpy()
    u = numpy_head_coords(head, theta.numpy())
    expected = (u - u.mean(0)) / u.std(0)
    np.testing.assert_allclose(z, expected, atol=2e-5)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)


def test_physics_head_recovers_spins_like_numpy_solve():
    rng = np.random.default_rng(3)
    n = 500
    q = rng.uniform(1.2, 8.0, n)
    s = rng.uniform(-0.8, 0.8, (n, 2))
    u = numpy_head_coords("physics", np.column_stack([q, s]))
    head = make_head("physics")
    got = head.from_head(torch.tensor(u, dtype=torch.float32)).double().numpy()
    for i in range(n):
        a = np.array([[q[i] / (1 + q[i]), 1 / (1 + q[i])], [1 + 3 / (4 * q[i]), 1 + 3 * q[i] / 4]])
        ref = np.linalg.solve(a, u[i, 1:])
        np.testing.assert_allclose(got[i, 1:], ref, atol=1e-4)
        np.testing.assert_allclose(ref, s[i], atol=1e-10)
    np.testing.assert_allclose(got[:, 0], q, rtol=1e-6)
    # through the standardisation: predict() of the exact standardised targets returns theta
    theta = torch.tensor(np.column_stack([q, s]), dtype=torch.float32)
    head.fit(theta)
    z = head.targets(theta)
    np.testing.assert_allclose(head.predict(z[:, :1], z[:, 1:]).numpy(), theta.numpy(), atol=1e-4)


@pytest.mark.parametrize("head", HEADS)
def test_head_coordinates_invert(head):
    theta, _ = synthetic(200, seed=5)
    h = make_head(head)
    back = h.from_head(h.to_head(theta.double()))
    mask = theta[:, 0] > 1.05  # physics head: ridge-biased only near q = 1
    np.testing.assert_allclose(back[mask].numpy(), theta[mask].double().numpy(), atol=1e-5)


def test_pca_reconstruction_matches_numpy_svd():
    rng = np.random.default_rng(7)
    n, dim, rank = 120, 90, 5
    data = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim)) * np.arange(1, dim + 1) / dim + 3.0
    for k in (3, rank):
        basis = PCABasis(dim, k).fit(torch.tensor(data))
        rec = basis.reconstruct(basis.project(torch.tensor(data, dtype=torch.float32))).double().numpy()
        mu = data.mean(0)
        _, _, vt = np.linalg.svd(data - mu, full_matrices=False)
        ref = (data - mu) @ vt[:k].T @ vt[:k] + mu
        err, ref_err = np.abs(rec - data).max(), np.abs(ref - data).max()
        if k == rank:
            assert err < 1e-4 and ref_err < 1e-9
        else:
            np.testing.assert_allclose(rec, ref, atol=1e-4)
    # the randomized path used for large fits agrees with the exact one on this low-rank data
    exact = PCABasis(dim, rank).fit(torch.tensor(data))
    approx = PCABasis(dim, rank).fit(torch.tensor(data), exact_limit=0)
    np.testing.assert_allclose(approx.components.abs().numpy(), exact.components.abs().numpy(), atol=1e-5)


def test_standardizer_and_frequency_feature():
    g = torch.Generator().manual_seed(2)
    data = torch.randn(50, 4, dtype=torch.float64, generator=g) * torch.tensor([1.0, 2.0, 3.0, 0.0]) + 5.0
    st = Standardizer(4).fit(data)
    np.testing.assert_allclose(st.std.numpy()[:3], data.numpy().std(0)[:3], rtol=1e-6)
    assert st.std[3] == 1.0  # constant column: unit scale, not a division by zero
    np.testing.assert_allclose(st.inverse(st(data.float())).numpy(), data.numpy(), atol=1e-5)
    with pytest.raises(GwinferError, match="expected"):
        st.fit(torch.zeros(5, 3))
    t = torch.arange(T) * DT
    x = torch.stack([torch.cos(0.7 * t), -torch.sin(0.7 * t)])[None].float()  # e^{-i 0.7 t}
    np.testing.assert_allclose(instantaneous_frequency(x, DT).numpy(), -0.7, atol=5e-5)


def test_bad_inputs_raise(data):
    theta, x = data
    model = fitted("wavenet", "physics", data)
    with pytest.raises(GwinferError, match=r"expected \(batch, 2, 200\)"):
        model.predict(torch.zeros(8, 3, T))
    with pytest.raises(GwinferError, match=r"expected \(batch, 2, 200\)"):
        model.predict(torch.zeros(2, T))
    with pytest.raises(GwinferError, match="float32"):
        model.predict(x.double())
    with pytest.raises(GwinferError, match="torch tensor"):
        model.predict(x.numpy())
    with pytest.raises(GwinferError, match=r"expected \(4, 3\)"):
        model.loss(theta[:4, :2], x[:4])
    with pytest.raises(GwinferError, match="float32"):
        model.loss(theta[:4].double(), x[:4])
    with pytest.raises(GwinferError, match="fit_standardization"):
        tiny_rb().predict(x)
    with pytest.raises(GwinferError, match="q = m1/m2"):
        tiny_rb().fit_standardization(theta * torch.tensor([0.1, 1.0, 1.0]), x)
    with pytest.raises(GwinferError, match="kernel_size"):
        WaveNetConfig(kernel_size=2)
    with pytest.raises(GwinferError, match="n_components"):
        tiny_rb(n_components=80).fit_standardization(theta, x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", list(BUILDERS))
def test_torchscript_trace_matches_eager(name, data):
    _, x = data
    model = fitted(name, "physics", data).eval()
    with torch.no_grad():
        traced = torch.jit.trace(model, x[:4], check_trace=False)
        for batch in (x[:4], x[10:19]):
            np.testing.assert_allclose(traced(batch).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-5)


def _overfit(name: str, steps: int) -> tuple[float, float]:
    """Train on 32 toy examples with Adam; return the mean loss before and after."""
    theta, x = synthetic(32, seed=11)
    torch.manual_seed(0)
    model = BUILDERS[name]("physics")
    model.fit_standardization(theta, x)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        first = model.loss(theta, x).mean().item()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(theta, x).mean().backward()
        opt.step()
    with torch.no_grad():
        last = model.loss(theta, x).mean().item()
    return first, last


@pytest.mark.parametrize("name,steps", [("reduced_basis", 200), ("wavenet", 150)])
def test_tiny_overfit(name, steps):
    # in a subprocess with the Makefile's glibc malloc tuning (without it small CPU training steps are
    # dominated by mmap/munmap page faults, ~7x slower here) and one thread (tiny ops; shared cores)
    env = dict(os.environ, MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_="10000000000", OMP_NUM_THREADS="1")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"from test_models import _overfit; print(*_overfit({name!r}, {steps}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, last = map(float, out.stdout.split()[-2:])
    assert last < first / 10, (first, last)


def test_models_do_not_import_lalsimulation():
    code = "import sys, gwinfer.models; sys.exit(any('lalsimulation' in m for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_coefficient_floor_keeps_float32_close_to_float64(data):
    """The trailing PCA directions of smooth chirps sit at float32 round-off: standardising them by their
    own spread amplifies round-off; coef_floor bounds that (float32 vs float64 of the same model)."""
    theta, x = synthetic(256, seed=3)
    gaps, floors = {}, {}
    for floor in (0.0, 1e-4):
        torch.manual_seed(0)
        model = tiny_rb("chi", n_components=40, coef_floor=floor)
        model.fit_standardization(theta, x)
        std = model.coef_std.std
        floors[floor] = min(float(b.min() / b.max()) for b in std.split(40))
        model.eval()
        with torch.no_grad():
            p32 = model.predict(x).double()
            p64 = model.double().head.predict(*model.leaves(x.double()))  # (predict takes float32 only)
        gaps[floor] = float((p32 - p64).abs().max())
    assert floors[0.0] < 1e-6 and floors[1e-4] >= 1e-4 * (1 - 1e-6)
    assert gaps[1e-4] < 1e-3 < gaps[0.0], gaps

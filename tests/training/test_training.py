"""The trainer against independent references: least squares, exact resume, schedules, LAMB Algorithm 2."""

from __future__ import annotations

import csv
import math
import signal

import numpy as np
import pytest
import torch
from pytorch_optimizer import Lamb
from torch import nn
from torch.utils.data import TensorDataset

from gwinfer.config import from_dict
from gwinfer.errors import GwinferError
from gwinfer.training import LAMB_OPTIONS, TrainConfig, Trainer, build_optimizer, build_scheduler, load_checkpoint
from gwinfer.training.optim import lr_factor


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded torch (bitwise comparisons, a shared 2-core machine); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class LinReg(nn.Module):
    """y = w . x + b with per-sample squared error; optional label noise drawn from torch's global RNG."""

    def __init__(self, d: int = 3, noise: float = 0.0) -> None:
        super().__init__()
        self.lin = nn.Linear(d, 1)
        self.noise, self.calls, self.hook = noise, 0, None

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.hook is not None:
                self.hook(self.calls)
        if self.noise:
            y = y + self.noise * torch.randn_like(y)
        return (self.lin(x).squeeze(-1) - y) ** 2

    def spec(self) -> dict:
        return {"d": self.lin.in_features, "noise": self.noise}


def linear_data(n: int = 256, d: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ np.array([1.5, -2.0, 0.5])[:d] + 0.3 + 0.1 * rng.normal(size=n)
    return x, y


def datasets(n: int = 256, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    x, y = linear_data(n + 64, seed=seed)
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return TensorDataset(t(x[:n]), t(y[:n])), TensorDataset(t(x[n:]), t(y[n:]))


def config(**kw) -> TrainConfig:
    base = dict(
        epochs=4,
        batch_size=32,
        optimizer="adamw",
        lr=0.02,
        lr_schedule="cosine",
        seed=3,
        device="cpu",
        tensorboard=False,
        early_stopping_patience=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def fresh_model(noise: float = 0.0) -> LinReg:
    torch.manual_seed(0)
    return LinReg(noise=noise)


def params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    for k in a:
        assert torch.equal(a[k], b[k]), (k, (a[k] - b[k]).abs().max().item())


# ---------------------------------------------------------------- training against least squares
def test_linear_regression_reaches_least_squares(tmp_path):
    train, val = datasets()
    model = fresh_model()
    result = Trainer(model, train, val, config(epochs=40, lr=0.05, optimizer="adam"), tmp_path).fit()
    x, y = train.tensors[0].double().numpy(), train.tensors[1].double().numpy()
    coef, *_ = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)
    got = np.append(model.lin.weight.detach().double().numpy().ravel(), model.lin.bias.item())
    np.testing.assert_allclose(got, coef, atol=2e-3)
    hist = result["history"]
    assert len(hist) == 40 and result["stopped"] == "completed"
    assert hist[-1]["train_loss"] < 0.2 * hist[0]["train_loss"]
    assert result["best_val_loss"] == min(h["val_loss"] for h in hist)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 41))
    assert set(rows[0]) == {"epoch", "step", "train_loss", "val_loss", "lr", "epoch_seconds", "samples_per_second"}
    assert int(rows[-1]["step"]) == 40 * 8 and float(rows[0]["samples_per_second"]) > 0
    assert (tmp_path / "best.pt").is_file()


# ---------------------------------------------------------------- resume and interruption
@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_resume_is_bitwise_exact(tmp_path, optimizer):
    train, val = datasets()
    cfg = dict(optimizer=optimizer, lr_schedule="step", step_epochs=1, step_gamma=0.5, warmup_epochs=0.5)
    straight = fresh_model(noise=0.05)
    r4 = Trainer(straight, train, val, config(epochs=4, **cfg), tmp_path / "a").fit()
    first = fresh_model(noise=0.05)
    Trainer(first, train, val, config(epochs=2, **cfg), tmp_path / "b").fit()
    again = fresh_model(noise=0.05)  # a new object: everything comes from the checkpoint
    rb = Trainer(again, train, val, config(epochs=4, **cfg), tmp_path / "b").fit(resume=True)
    assert_same(params(straight), params(again))
    assert [h["train_loss"] for h in r4["history"]] == [h["train_loss"] for h in rb["history"]]
    # step halving: the lr after epoch e (= the lr of the first step of epoch e + 1) is lr * 0.5 ** e
    assert [h["lr"] for h in rb["history"]] == pytest.approx([0.02 * 0.5**e for e in range(1, 5)])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_interrupt_writes_checkpoint_and_resumes_exactly(tmp_path, sig):
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN in a background job
    train, val = datasets()
    straight = fresh_model(noise=0.05)
    Trainer(straight, train, val, config(), tmp_path / "a").fit()
    model = fresh_model(noise=0.05)
    model.hook = lambda calls: [signal.raise_signal(sig) for _ in range(2)] if calls == 11 else None  # 2nd: duplicate
    result = Trainer(model, train, val, config(), tmp_path / "b").fit()
    assert result["stopped"] == "interrupted" and result["epochs_completed"] == 1
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert (ck["epoch"], ck["step_in_epoch"], ck["global_step"]) == (1, 3, 11)
    assert_same(ck["model_state"], params(model))
    again = fresh_model(noise=0.05)
    r = Trainer(again, train, val, config(), tmp_path / "b").fit()
    assert r["stopped"] == "completed" and r["global_step"] == 32
    assert_same(params(straight), params(again))


def test_request_stop_hook(tmp_path):
    train, val = datasets()
    model = fresh_model()
    trainer = Trainer(model, train, val, config(), tmp_path)
    model.hook = lambda calls: trainer.request_stop() if calls == 5 else None
    assert trainer.fit()["stopped"] == "interrupted"
    assert load_checkpoint(tmp_path / "checkpoint.pt")["global_step"] == 5


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    train, val = datasets()
    meta = {"data": {"path": "cat.h5", "sha256": "ab"}, "grid": [-1.0, 0.5], "n": 3, "none": None}
    Trainer(fresh_model(), train, val, config(epochs=1), tmp_path, metadata=meta).fit()
    for name in ("checkpoint.pt", "best.pt"):
        ck = torch.load(tmp_path / name, weights_only=True)
        assert ck["metadata"] == meta and ck["model_spec"] == {"d": 3, "noise": 0.0}
        assert ck["gwinfer_version"] == __import__("gwinfer").__version__
        assert ck["config"]["lr"] == 0.02 and ck["epoch"] == 1 and ck["global_step"] == 8
        assert ck["data_position"] == {"seed": 3, "sampler_epoch": 1, "step_in_epoch": 0, "per_rank_batch": 32}
        assert set(ck["rng_states"][0]) == {"torch", "cuda", "numpy", "python"}
        assert {"optimizer_state", "scheduler_state", "best_val_loss", "epochs_without_improvement"} <= set(ck)


def test_load_checkpoint_errors_are_one_line(tmp_path):
    train, val = datasets()
    Trainer(fresh_model(), train, val, config(epochs=1), tmp_path).fit()
    good = (tmp_path / "checkpoint.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    for name, words in [
        ("missing.pt", "does not exist"),
        ("cut.pt", "corrupt"),
        ("junk.pt", "corrupt"),
        ("other.pt", "not a gwinfer checkpoint"),
    ]:
        with pytest.raises(GwinferError, match=words) as err:
            load_checkpoint(tmp_path / name)
        assert "\n" not in str(err.value)


def test_resume_refuses_a_different_config_or_model(tmp_path):
    train, val = datasets()
    Trainer(fresh_model(), train, val, config(epochs=1), tmp_path).fit()
    with pytest.raises(GwinferError, match=r"different config \(lr: 0.02 -> 0.03\)"):
        Trainer(fresh_model(), train, val, config(epochs=2, lr=0.03), tmp_path).fit()
    with pytest.raises(GwinferError, match="different model"):
        Trainer(fresh_model(noise=0.1), train, val, config(epochs=2), tmp_path).fit()
    r = Trainer(fresh_model(), train, val, config(epochs=2, max_minutes=5.0), tmp_path).fit()  # allowed changes
    assert r["epochs_completed"] == 2 and len(r["history"]) == 2
    assert Trainer(fresh_model(), train, val, config(epochs=1, lr=0.03), tmp_path).fit(resume=False)["global_step"] == 8


# ---------------------------------------------------------------- early stopping, bad input, tensorboard
def test_early_stopping_when_validation_stalls(tmp_path):
    train, val = datasets()
    cfg = config(epochs=20, lr=1e-7, lr_schedule="constant", early_stopping_patience=3, min_delta=1e-3)
    r = Trainer(fresh_model(), train, val, cfg, tmp_path).fit()
    assert r["stopped"] == "early_stopping" and r["epochs_completed"] == 4 and r["best_epoch"] == 1
    again = Trainer(fresh_model(), train, val, cfg, tmp_path).fit()  # resuming a stopped run does nothing
    assert again["stopped"] == "early_stopping" and again["global_step"] == r["global_step"]


def test_time_budget_stops_at_the_end_of_an_epoch_with_a_checkpoint(tmp_path):
    train, val = datasets()
    r = Trainer(fresh_model(), train, val, config(epochs=5, max_minutes=1e-9), tmp_path).fit()
    assert r["stopped"] == "time_budget" and r["epochs_completed"] == 1
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert (ck["epoch"], ck["step_in_epoch"], ck["stopped"]) == (1, 0, "time_budget")
    assert Trainer(fresh_model(), train, val, config(epochs=5), tmp_path).fit()["epochs_completed"] == 5


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("optimizer", "sgd"),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("weight_decay", 2.0),
        ("betas", (0.9,)),
        ("betas", (0.9, 1.0)),
        ("lr_schedule", "linear"),
        ("step_epochs", 0),
        ("step_gamma", 0.0),
        ("step_gamma", 1.5),
        ("warmup_epochs", -1.0),
        ("warmup_epochs", 99.0),
        ("grad_clip", -1.0),
        ("early_stopping_patience", -1),
        ("min_delta", -0.1),
        ("seed", -1),
        ("device", "gpu"),
        ("num_workers", -1),
        ("max_minutes", -5.0),
        ("tensorboard", "yes"),
        ("log_every_steps", 0),
        ("scale_lr_with_world_size", 1),
    ],
)
def test_bad_config_values_raise_one_line_errors(field, value):
    with pytest.raises(GwinferError) as err:
        config(**{field: value})
    assert field.split("[")[0] in str(err.value) and "\n" not in str(err.value)


def test_config_from_yaml_mapping_and_batch_split():
    cfg = from_dict(TrainConfig, {"epochs": 3, "betas": [0.8, 0.99], "optimizer": "lamb"}, "train")
    assert cfg.betas == (0.8, 0.99) and cfg.optimizer == "lamb"
    with pytest.raises(GwinferError, match="unknown setting"):
        from_dict(TrainConfig, {"learning_rate": 1e-3}, "train")
    assert cfg.per_rank_batch(4) == 128
    with pytest.raises(GwinferError, match="multiple of the number of processes"):
        cfg.per_rank_batch(3)


def test_trainer_rejects_bad_models_and_metadata(tmp_path):
    train, val = datasets()
    with pytest.raises(GwinferError, match="loss"):
        Trainer(nn.Linear(3, 1), train, val, config(), tmp_path)
    with pytest.raises(GwinferError, match=r"metadata\['grid'\] is a numpy.ndarray"):
        Trainer(fresh_model(), train, val, config(), tmp_path, metadata={"grid": np.zeros(3)})

    class MeanLoss(LinReg):
        def loss(self, x, y):
            return super().loss(x, y).mean()

    with pytest.raises(GwinferError, match=r"per-sample losses of shape \(32,\), got \(\)"):
        Trainer(MeanLoss(), train, val, config(), tmp_path).fit()


def test_tensorboard_scalars_and_no_validation_set(tmp_path):
    train, _ = datasets()
    r = Trainer(fresh_model(), train, None, config(epochs=2, tensorboard=True, log_every_steps=4), tmp_path).fit()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert r["best_val_loss"] == min(h["train_loss"] for h in r["history"])  # train loss stands in


# ---------------------------------------------------------------- learning-rate schedules
def lrs(cfg: TrainConfig, steps_per_epoch: int, world_size: int = 1) -> list[float]:
    """The lr of every optimizer step of a run, then the lr after the last step."""
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], cfg, world_size)
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    out = []
    for _ in range(cfg.epochs * steps_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out + [opt.param_groups[0]["lr"]]


def test_step_schedule_halves_at_the_right_epochs():
    got = lrs(config(epochs=10, lr=0.1, lr_schedule="step", step_epochs=3), steps_per_epoch=4)
    want = [0.1 * 0.5 ** (e // 3) for e in range(10) for _ in range(4)]
    np.testing.assert_allclose(got[:-1], want, rtol=1e-12)


def test_cosine_schedule_reaches_its_minimum_at_the_end():
    got = np.array(lrs(config(epochs=5, lr=0.1, lr_schedule="cosine"), steps_per_epoch=10))
    assert got[0] == pytest.approx(0.1) and got[25] == pytest.approx(0.05) and got[-1] == pytest.approx(0.0, abs=1e-15)
    assert np.all(np.diff(got) <= 0) and np.argmin(got) == len(got) - 1
    np.testing.assert_allclose(got, 0.05 * (1 + np.cos(np.pi * np.arange(51) / 50)), atol=1e-15)


def test_warmup_ramps_linearly_then_hands_over():
    got = np.array(lrs(config(epochs=4, lr=0.1, lr_schedule="constant", warmup_epochs=1.5), steps_per_epoch=4))
    np.testing.assert_allclose(got[:6], 0.1 * np.arange(1, 7) / 6, rtol=1e-12)
    np.testing.assert_allclose(got[6:], 0.1, rtol=1e-12)
    cos = np.array(lrs(config(epochs=4, lr=0.1, lr_schedule="cosine", warmup_epochs=1.0), steps_per_epoch=4))
    assert np.all(np.diff(cos[:4]) > 0) and cos[3] == pytest.approx(0.1) and cos[-1] == pytest.approx(0.0, abs=1e-15)


def test_linear_world_size_scaling_multiplies_lr():
    assert lrs(config(epochs=1, lr=0.01, lr_schedule="constant", scale_lr_with_world_size=True), 2, 4)[0] == 0.04
    assert lrs(config(epochs=1, lr=0.01, lr_schedule="constant"), 2, 4)[0] == 0.01


def test_scheduler_resumes_exactly_from_state_dict(tmp_path):
    cfg = config(epochs=3, lr=0.1, lr_schedule="cosine", warmup_epochs=0.5)
    full = lrs(cfg, steps_per_epoch=6)
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], cfg)
    sched = build_scheduler(opt, cfg, 6)
    for _ in range(7):
        opt.step()
        sched.step()
    torch.save({"o": opt.state_dict(), "s": sched.state_dict()}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", weights_only=True)
    opt2 = build_optimizer([nn.Parameter(torch.zeros(2))], cfg)
    sched2 = build_scheduler(opt2, cfg, 6)
    opt2.load_state_dict(saved["o"])
    sched2.load_state_dict(saved["s"])
    rest = []
    for _ in range(11):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert rest + [opt2.param_groups[0]["lr"]] == full[7:]
    assert lr_factor(cfg, 6)(7) == pytest.approx(full[7] / 0.1, rel=1e-14)


# ---------------------------------------------------------------- LAMB = You et al. 2019, Algorithm 2
def lamb_algorithm2(ws, grads, lr, beta1, beta2, eps, wd, phi_max=10.0):
    """Numpy LAMB (Algorithm 2) with per-tensor trust ratio phi(||w||) / ||r + wd w||, phi(z) = min(z, 10)."""
    ws = [w.copy() for w in ws]
    m = [np.zeros_like(w) for w in ws]
    v = [np.zeros_like(w) for w in ws]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat, v_hat = m[i] / (1 - beta1**t), v[i] / (1 - beta2**t)
            r = m_hat / (np.sqrt(v_hat) + eps) + wd * ws[i]
            wn, rn = np.linalg.norm(ws[i]), np.linalg.norm(r)
            ws[i] = ws[i] - lr * (min(wn, phi_max) / rn if wn > 0 and rn > 0 else 1.0) * r
    return ws


def run_torch(opt_factory, ws, grads):
    ps = [nn.Parameter(torch.tensor(w)) for w in ws]
    opt = opt_factory(ps)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in ps]


@pytest.fixture
def lamb_problem():
    rng = np.random.default_rng(7)
    ws = [rng.normal(size=(4, 3)), 5.0 * rng.normal(size=20)]  # ||w|| about 3 and about 22 (phi clips at 10)
    grads = [[rng.normal(size=w.shape) * s for w, s in zip(ws, (1.0, 0.1))] for _ in range(5)]
    return ws, grads


def test_lamb_one_step_equals_algorithm2(lamb_problem):
    """One step of pytorch_optimizer.Lamb(**LAMB_OPTIONS) without weight decay is Algorithm 2.

    The library adds eps to the uncorrected sqrt(v), i.e. its eps is Algorithm 2's eps * sqrt(1 - beta2^t).
    """
    ws, grads = lamb_problem
    kw = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-6)
    want = lamb_algorithm2(ws, grads[:1], wd=0.0, beta1=0.9, beta2=0.999, lr=0.01, eps=1e-6 / math.sqrt(1e-3))
    got = run_torch(lambda ps: Lamb(ps, weight_decay=0.0, **kw, **LAMB_OPTIONS), ws, grads[:1])
    for w, a, b in zip(ws, got, want):
        np.testing.assert_allclose(a - w, b - w, rtol=1e-6)
    default = run_torch(lambda ps: Lamb(ps, weight_decay=0.0, **kw), ws, grads[:1])  # library defaults differ
    assert not np.allclose(default[0] - ws[0], want[0] - ws[0], rtol=1e-2)


def test_project_lamb_with_weight_decay_equals_algorithm2(lamb_problem):
    """build_optimizer("lamb") = Lamb + per-step bias correction: 5 steps with weight decay match exactly."""
    ws, grads = lamb_problem
    cfg = config(optimizer="lamb", lr=0.01, weight_decay=0.05, betas=(0.9, 0.999))
    want = lamb_algorithm2(ws, grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-6, wd=0.05)
    got = run_torch(lambda ps: build_optimizer(ps, cfg), ws, grads)
    for w, a, b in zip(ws, got, want):
        np.testing.assert_allclose(a - w, b - w, rtol=1e-6)
    plain = run_torch(lambda ps: Lamb(ps, lr=0.01, weight_decay=0.05, eps=1e-6, **LAMB_OPTIONS), ws, grads)
    assert not np.allclose(plain[0] - ws[0], want[0] - ws[0], rtol=1e-3)  # the bias correction matters
    assert math.isclose(build_optimizer([nn.Parameter(torch.zeros(1))], cfg).param_groups[0]["weight_decay"], 0.05)


def test_yaml_configs_read_exponent_floats_and_refuse_duplicate_keys(tmp_path):
    """YAML 1.1 (PyYAML's default) reads 2e-3 as a string and keeps the last of two equal keys."""
    from gwinfer.config import load_yaml

    (tmp_path / "ok.yaml").write_text("lr: 2e-3\ndt: 1e-9\nsteps: 10\nname: 1e-3x\n")
    assert load_yaml(tmp_path / "ok.yaml") == {"lr": 2e-3, "dt": 1e-9, "steps": 10, "name": "1e-3x"}
    assert from_dict(TrainConfig, {"lr": load_yaml(tmp_path / "ok.yaml")["lr"]}).lr == 2e-3
    (tmp_path / "dup.yaml").write_text("train:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(GwinferError, match="duplicate key 'lr' \\(line 3\\)"):
        load_yaml(tmp_path / "dup.yaml")


def test_same_seed_same_run(tmp_path, micro_catalogue):
    """Two ``train_point`` runs of one config are equal bit for bit: the seeds are set before the model is
    built (its initialisation) and the standardisation sample is deterministic."""
    import torch

    from gwinfer.training.point import train_point

    cfg = {
        "data": {"catalogue": str(micro_catalogue), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
        "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1, "dt": 4.0,
                                                      "augment": {"noise": 1e-3}}},
        "train": {"epochs": 2, "batch_size": 9, "tensorboard": False, "seed": 5},
    }  # fmt: skip
    a = torch.load(train_point(cfg, tmp_path / "a"), weights_only=True)["model_state"]
    torch.manual_seed(999)  # whatever the global state before the run
    b = torch.load(train_point(cfg, tmp_path / "b"), weights_only=True)["model_state"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_starting_over_moves_a_finished_run_aside(tmp_path, micro_catalogue):
    """``--no-resume`` into a finished run keeps its model, checkpoints and log in previous-<time>/."""
    from gwinfer.training.point import train_point

    cfg = {
        "data": {"catalogue": str(micro_catalogue), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
        "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1, "dt": 4.0}},
        "train": {"epochs": 1, "batch_size": 9, "tensorboard": False},
    }  # fmt: skip
    first = train_point(cfg, tmp_path / "run")
    before = first.read_bytes()
    train_point({**cfg, "train": {**cfg["train"], "seed": 1}}, tmp_path / "run", resume=False)
    (aside,) = tmp_path.joinpath("run").glob("previous-*")
    assert (aside / "model.pt").read_bytes() == before
    assert {p.name for p in aside.iterdir()} >= {"model.pt", "checkpoint.pt", "best.pt", "log.csv"}


def test_set_overrides_any_config_value(tmp_path, micro_catalogue, capsys):
    """``--set section.key=value`` changes the run (recorded in the model's experiment), bad ones are one line."""
    import json

    import torch

    from gwinfer.cli import main
    from gwinfer.config import parse_settings

    assert parse_settings(["train.lr=2e-3", "model.config.hidden=[8, 8]", "data.x=a b"]) == {
        "train": {"lr": 2e-3}, "model": {"config": {"hidden": [8, 8]}}, "data": {"x": "a b"},
    }  # fmt: skip
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(json.dumps({
        "data": {"catalogue": str(micro_catalogue), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
        "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1, "dt": 4.0}},
        "train": {"epochs": 2, "batch_size": 9, "tensorboard": False},
    }))  # fmt: skip
    argv = ["train", "--config", str(cfg), "--out", str(tmp_path / "run"), "--set", "train.epochs=1",
            "--set", "model.config.hidden=8"]  # fmt: skip
    assert main(argv) == 0
    meta = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["metadata"]
    assert meta["experiment"]["train"]["epochs"] == 1 and meta["experiment"]["model"]["config"]["hidden"] == 8
    for bad, message in (("train.lr", "must look like section.key=value"), ("train.nope=1", "unknown setting")):
        assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "bad"), "--set", bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_config_paths_are_relative_to_the_config_file(tmp_path, micro_catalogue, monkeypatch):
    """A config's catalogue path means the same folder from any working directory; --set paths are the
    caller's (relative to the working directory)."""
    import os
    from pathlib import Path

    from gwinfer.training.run import load_sections

    conf = tmp_path / "configs"
    conf.mkdir()
    rel = os.path.relpath(micro_catalogue, conf)
    (conf / "exp.yaml").write_text(f"data: {{catalogue: {rel}, catalogues: [{rel}]}}\nmodel: {{kind: wavenet}}\n")
    elsewhere = tmp_path / "somewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    raw = load_sections(conf / "exp.yaml", ("data", "model"), ("train",), "x")
    assert Path(raw["data"]["catalogue"]).resolve() == micro_catalogue.resolve()
    assert Path(raw["data"]["catalogues"][0]).resolve() == micro_catalogue.resolve()
    raw = load_sections(conf / "exp.yaml", ("data", "model"), ("train",), "x", settings=["data.catalogue=cat"])
    assert raw["data"]["catalogue"] == "cat"
    shipped = load_sections(Path(__file__).parents[2] / "configs" / "train-rb-robust.yaml", ("data", "model"),
                            ("train",), "x")  # fmt: skip
    assert shipped["data"]["catalogue"].endswith("/catalogues/multicode/train-phenomt")
    assert Path(shipped["data"]["catalogue"]).is_absolute()


def test_settings_as_mapping_or_strings_are_one_override_mechanism(tmp_path, micro_catalogue, caplog):
    """``settings`` is either ``--set`` strings or the equivalent ``{section: {key: value}}`` mapping: both are
    deep-merged and validated the same way (same TrainConfig, same one-line refusals), and a train-section
    override by mapping changes the run."""
    import logging

    import torch

    from gwinfer.errors import GwinferError
    from gwinfer.training.point import train_point
    from gwinfer.training.run import load_sections, train_settings

    cfg = {
        "data": {"catalogue": str(micro_catalogue), "t_start": -4000.0, "t_end": 100.0, "dt": 4.0},
        "model": {"kind": "reduced_basis", "config": {"n_components": 4, "hidden": 16, "depth": 1, "dt": 4.0}},
        "train": {"epochs": 2, "batch_size": 9, "tensorboard": False},
    }  # fmt: skip
    strings = ["train.lr=2e-3", "train.betas=[0.8, 0.99]", "train.epochs=1", "model.config.hidden=8"]
    mapping = {"train": {"lr": 2e-3, "betas": [0.8, 0.99], "epochs": 1}, "model": {"config": {"hidden": 8}}}
    by_strings = load_sections(cfg, ("data", "model"), ("train",), "x", settings=strings)
    by_mapping = load_sections(cfg, ("data", "model"), ("train",), "x", settings=mapping)
    assert by_strings == by_mapping and by_mapping["model"]["config"] == {**cfg["model"]["config"], "hidden": 8}
    assert train_settings(by_strings) == train_settings(by_mapping)
    assert train_settings(by_mapping).lr == 2e-3 and train_settings(by_mapping).batch_size == 9  # kept
    assert cfg["train"]["epochs"] == 2  # the caller's config is not changed
    for bad_strings, bad_mapping, message in (
        (["nope.x=1"], {"nope": {"x": 1}}, "has sections data, model, train"),
        (["train.nope=1"], {"train": {"nope": 1}}, "unknown setting"),
        (["train.lr=fast"], {"train": {"lr": "fast"}}, "train.lr must be a number"),
        (["train=3"], {"train": 3}, "the train section must be a mapping"),
    ):
        for bad in (bad_strings, bad_mapping):
            with pytest.raises(GwinferError, match=message) as err:
                train_settings(load_sections(cfg, ("data", "model"), ("train",), "x", settings=bad))
            assert "\n" not in str(err.value)
    with pytest.raises(GwinferError, match="settings must be a list of 'section.key=value' strings"):
        load_sections(cfg, ("data", "model"), ("train",), "x", settings="train.lr=1")

    caplog.set_level(logging.INFO, logger="gwinfer.training.run")
    model = train_point(cfg, tmp_path / "run", settings={"train": {"epochs": 1}})
    # the long preparation step is announced before it starts and timed after (never silent)
    assert "fitting the standardisation (and any SVD basis, float64) on 27 training examples ..." in caplog.text
    assert "training examples: done in" in caplog.text
    meta = torch.load(model, weights_only=True)["metadata"]
    assert meta["experiment"]["train"]["epochs"] == 1 and meta["training"]["epochs_completed"] == 1

"""Knowledge distillation of posterior estimators (gwinfer.training.distill, ``gwinfer distill``).

Seeded and tiny: Gaussian toys with analytic KL divergences for the loss terms, one 64-signal simulation
file and a 1-epoch ResNet1D-IAF teacher for the end-to-end run, the resume and the CLI.
"""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from gwinfer.errors import GwinferError
from gwinfer.models.builder import build_estimator, load_estimator
from gwinfer.training.distill import (
    DistillConfig,
    Distiller,
    EpochHook,
    distill,
    n_parameters,
    scaled_spec,
    student_spec,
    tempered_sample,
)

N_SIM = 64


def tiny(kind: str, hidden: int = 16, context_dim: int = 8) -> dict:
    cfg: dict = {"embedding": {"kind": "mlp", "context_dim": context_dim, "hidden": [hidden]}}
    if kind == "gaussian":
        cfg["hidden"] = [hidden]
    else:
        cfg.update(transforms=2, hidden=[hidden, hidden])
    return {"kind": kind, "config": cfg}


def toy_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """theta ~ N(0, I) (2-D), x = A theta + noise (3-D), then an affine unit change (far from standard)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.tensor([[1.0, 0.5], [-0.5, 1.0], [0.8, 0.3]])
    theta = torch.randn(n, 2, generator=g)
    x = theta @ a.T + 0.8 * torch.randn(n, 3, generator=g)
    return 1.0 + 3.0 * theta, x


def pair(teacher_kind: str = "iaf", student_kind: str = "iaf", seed: int = 0, **cfg) -> Distiller:
    torch.manual_seed(seed)
    theta, x = toy_data(512)
    teacher = build_estimator(tiny(teacher_kind), 2, 3)
    teacher.fit_standardization(theta, x)
    student = build_estimator(tiny(student_kind, hidden=8), 2, 3)
    d = Distiller(teacher.eval(), student, DistillConfig(**cfg), epochs=4)
    d.fit_standardization(theta, x)
    return d


# ------------------------------------------------------------------------------------------ config and spec
class EpochData(torch.utils.data.Dataset):
    epoch = None

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return torch.zeros(1)

    def set_epoch(self, e):
        self.epoch = e


def test_distill_config_validation_and_temperature_schedule():
    c = DistillConfig(temperature_start=1.0, temperature_end=4.0)
    assert [c.temperature_at(e, 4) for e in range(6)] == [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]
    assert DistillConfig(temperature_start=1.0, temperature_end=4.0, anneal_epochs=3).temperature_at(1, 100) == 2.5
    assert DistillConfig(temperature_start=2.0, temperature_end=4.0).temperature_at(0, 1) == 4.0  # one epoch: end
    for kwargs, match in [
        ({"alpha": 1.5}, r"alpha = 1.5 must be a number in \[0.0, 1.0\]"),
        ({"alpha": -0.1}, "alpha"),
        ({"matching": "reverse_kl"}, "matching"),
        ({"teacher_samples": 0}, "teacher_samples"),
        ({"temperature_end": 0.0}, "temperature_end"),
        ({"anneal_epochs": 0}, "anneal_epochs"),
        ({"feature_weight": -1.0}, "feature_weight"),
    ]:
        with pytest.raises(GwinferError, match=match) as err:
            DistillConfig(**kwargs)
        assert "\n" not in str(err.value)

    # the distiller follows set_epoch, also through the dataset hook the trainer calls
    d = pair(temperature_start=1.0, temperature_end=4.0)
    assert d.temperature == 1.0

    data = EpochData()
    hook = EpochHook(data, d)
    hook.set_epoch(2)
    assert data.epoch == 2 and d.temperature == 3.0 and len(hook) == 1
    import pickle

    assert pickle.loads(pickle.dumps(hook)).listeners == []  # DataLoader workers do not get the model


def test_scaled_spec_is_smaller_and_valid():
    teacher = {
        "kind": "iaf",
        "theta_dim": 3,
        "x_shape": [2, 256],
        "config": {
            "embedding": {
                "kind": "resnet",
                "context_dim": 16,
                "resnet": {"channels": [8, 16, 32, 32, 64], "pool_size": 4},
            },
            "transforms": 4,
            "hidden": [32, 32],
            "residual": True,
        },
    }
    spec = scaled_spec(teacher, width=0.5, depth=0.5)
    cfg = spec["config"]
    assert cfg["embedding"]["resnet"]["channels"] == [4, 16, 32]  # blocks 0, 2, 4 kept (3 of 5), halved
    assert cfg["transforms"] == 2 and cfg["hidden"] == [16, 16] and cfg["residual"] is True
    assert cfg["embedding"]["context_dim"] == 16 and spec["x_shape"] == [2, 256] and spec["theta_dim"] == 3
    t, s = build_estimator(teacher), build_estimator(spec)
    assert n_parameters(s) < 0.5 * n_parameters(t)
    assert scaled_spec(teacher, 1.0, 1.0)["config"]["embedding"]["resnet"]["channels"] == [8, 16, 32, 32, 64]
    assert scaled_spec(teacher, 0.01, 0.01)["config"]["embedding"]["resnet"]["channels"] == [1]  # floors at 1

    for kind in ("gaussian", "maf", "nsf", "cvae", "cvae_plus"):
        spec = scaled_spec({"kind": kind}, 0.5, 0.5)  # defaults are filled in, then scaled
        assert n_parameters(build_estimator(spec, 2, 3)) < n_parameters(build_estimator({"kind": kind}, 2, 3))

    # the student section: ratio + overrides, or a full spec
    s = student_spec({"ratio": {"width": 0.5}, "config": {"embedding": {"context_dim": 4}}}, teacher)
    assert s["config"]["embedding"]["context_dim"] == 4 and s["config"]["transforms"] == 4 and "x_shape" not in s
    assert student_spec({"kind": "maf", "config": {"transforms": 1}}, teacher) == {
        "kind": "maf",
        "config": {"transforms": 1},
    }
    for bad, match in [
        ({"ratio": {"width": 0}}, r"student.ratio.width = 0 must be a number in \(0.0, 1.0\]"),
        ({"ratio": {"depth": 1.5}}, "student.ratio.depth"),
        ({"ratio": {"wide": 0.5}}, "ratio"),
        ({"ratio": {"width": 0.5}, "kind": "maf"}, "unknown key"),
        ({"config": {}}, "kind"),
        ({}, "student"),
    ]:
        with pytest.raises(GwinferError, match=match):
            student_spec(bad, teacher)


# ------------------------------------------------------------------------------------------ the loss
def test_gradients_reach_only_the_student_and_the_teacher_stays_frozen():
    d = pair(matching="both", alpha=0.5, teacher_samples=4)
    before = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    opt = torch.optim.AdamW(d.parameters(), lr=1e-2, weight_decay=0.1)
    d.train()
    assert d.student.training and not d.teacher.training
    theta, x = toy_data(32, seed=1)
    loss = d.loss(theta, x)
    assert loss.shape == (32,) and torch.isfinite(loss).all()
    loss.mean().backward()
    assert all(p.grad is None for p in d.teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.student.parameters())
    assert all(p.grad is not None for p in d.projection.parameters())
    student_before = [p.detach().clone() for p in d.student.parameters()]
    opt.step()
    for k, v in d.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert any(not torch.equal(a, b) for a, b in zip(student_before, d.student.parameters()))
    # the student shares the teacher's units
    for name in ("mean", "std"):
        assert torch.equal(getattr(d.student.theta_scale, name), getattr(d.teacher.theta_scale, name))
        assert torch.equal(getattr(d.student.x_scale, name), getattr(d.teacher.x_scale, name))


@pytest.mark.parametrize("cfg", [{"alpha": 0.0, "matching": "both"}, {"alpha": 0.7, "matching": "none"}])
def test_without_teacher_term_the_loss_is_the_student_nll(cfg):
    d = pair(**cfg)
    assert d.projection is None
    d.train()
    theta, x = toy_data(16, seed=2)
    assert torch.equal(d.loss(theta, x), d.student.loss(theta, x))


def test_eval_loss_is_the_student_nll():
    d = pair(alpha=0.5, matching="both")
    d.eval()
    theta, x = toy_data(16, seed=2)
    assert torch.equal(d.loss(theta, x), d.student.loss(theta, x))
    d.train()
    terms = d.terms(theta, x)
    torch.manual_seed(5)
    a = d.loss(theta, x)
    torch.manual_seed(5)
    t = d.terms(theta, x)
    torch.testing.assert_close(a, 0.5 * t["nll"] + 0.5 * (t["forward_kl"] + t["features"]))
    assert set(terms) == {"nll", "forward_kl", "features"}


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_forward_kl_estimate_matches_analytic_gaussian_kl(temperature):
    """teacher, student Gaussian estimators: KD + H[tempered teacher] = KL(N(mu, T Sigma) || student)."""
    d = pair("gaussian", "gaussian", teacher_samples=4096, temperature_start=temperature, temperature_end=temperature)
    _, x = toy_data(3, seed=3)
    xr = x.repeat_interleave(8, dim=0)  # 8 x 4096 draws per observation
    with torch.no_grad():
        c_t, c_s = d.teacher.context(xr), d.student.context(xr)
        est = d.forward_kl(c_t, c_s).view(3, 8).mean(1)
        t, s = d.teacher.distribution(c_t[::8]), d.student.distribution(c_s[::8])
        tempered = torch.distributions.MultivariateNormal(t.loc, scale_tril=t.scale_tril * math.sqrt(temperature))
        kl = torch.distributions.kl_divergence(tempered, s)
    assert kl.min() > 0.05  # a nontrivial pair
    torch.testing.assert_close(est - tempered.entropy(), kl, atol=0.03, rtol=0.03)


def test_tempered_flow_samples_have_a_broadened_base():
    d = pair("iaf", "iaf")
    teacher = d.teacher
    _, x = toy_data(3, seed=4)
    torch.manual_seed(0)
    c = teacher.context(x)
    u = tempered_sample(teacher, c, 4000, 4.0)
    assert u.shape == (3, 4000, 2)
    with torch.no_grad():
        z = teacher.flow(c).transform(u.transpose(0, 1))  # back to the base: N(0, T I)
    torch.testing.assert_close(z.std(dim=0), torch.full((3, 2), 2.0), atol=0.1, rtol=0)
    torch.manual_seed(1)
    a = tempered_sample(teacher, c, 5, 1.0)
    torch.manual_seed(1)
    torch.testing.assert_close(a, teacher._sample(c, 5))  # T = 1: the teacher's own sampler
    cvae = build_estimator({"kind": "cvae"}, 2, 3)
    cvae.fit_standardization(*toy_data(8))
    with pytest.raises(GwinferError, match="cannot be tempered"):
        Distiller(cvae.eval(), d.student, DistillConfig(temperature_end=2.0))


def test_kd_alone_drives_the_student_to_the_teacher():
    """alpha = 1, forward KL only, on the linear-Gaussian toy: the analytic KL(teacher || student),
    averaged over observations, drops by more than 80 %."""
    d = pair("gaussian", "gaussian", alpha=1.0, teacher_samples=16)
    with torch.no_grad():  # a teacher far from the student's near-standard-normal initial output
        d.teacher.net[-1].weight.mul_(4.0)
        d.teacher.net[-1].bias.add_(0.5)
    _, x_eval = toy_data(256, seed=7)

    def mean_kl() -> float:
        with torch.no_grad():
            t = d.teacher.distribution(d.teacher.context(x_eval))
            s = d.student.distribution(d.student.context(x_eval))
            return float(torch.distributions.kl_divergence(t, s).mean())

    before = mean_kl()
    opt = torch.optim.Adam(d.student.parameters(), lr=1e-2)
    d.train()
    for step in range(250):
        theta, x = toy_data(128, seed=100 + step)
        opt.zero_grad()
        d.loss(theta, x).mean().backward()
        opt.step()
    after = mean_kl()
    assert before > 1.0 and after < 0.2 * before, (before, after)


def test_distiller_refuses_mismatched_pairs():
    theta, x = toy_data(64)
    teacher = build_estimator(tiny("iaf"), 2, 3)
    with pytest.raises(GwinferError, match="not standardised"):
        Distiller(teacher, build_estimator(tiny("iaf"), 2, 3), DistillConfig())
    teacher.fit_standardization(theta, x)
    with pytest.raises(GwinferError, match="same parameters"):
        Distiller(teacher, build_estimator(tiny("iaf"), 2, 4), DistillConfig())
    with pytest.raises(GwinferError, match="exact density"):
        Distiller(teacher, build_estimator({"kind": "cvae"}, 2, 3), DistillConfig(matching="forward_kl"))
    Distiller(teacher, build_estimator({"kind": "cvae"}, 2, 3), DistillConfig(matching="features"))


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A 64-signal simulation and a 1-epoch ResNet1D-IAF teacher trained on it by train_posterior."""
    from gwinfer.cli.posterior import add_parsers
    from gwinfer.training.posterior import train_posterior

    d = tmp_path_factory.mktemp("distill")
    (d / "sim.yaml").write_text("prior: gw5d\nn: 1000\nseed: 0\ndetectors: [plus]\n")
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "simulate",
            "--config",
            str(d / "sim.yaml"),
            "--out",
            str(d / "sim.h5"),
            "--n",
            str(N_SIM),
            "--seed",
            "3",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    data = {"simulation": str(d / "sim.h5"), "val_fraction": 0.25, "fit_samples": 32}
    experiment = {
        "data": data,
        "model": {
            "kind": "iaf",
            "config": {
                "embedding": {"kind": "resnet", "context_dim": 8, "resnet": {"channels": [4, 8, 8], "pool_size": 4}},
                "transforms": 2,
                "hidden": [16],
            },
        },
        "train": {
            "epochs": 1,
            "batch_size": 16,
            "lr": 1e-3,
            "tensorboard": False,
            "device": "cpu",
            "early_stopping_patience": 0,
        },
    }
    torch.manual_seed(0)
    return {"dir": d, "data": data, "teacher": train_posterior(experiment, d / "teacher")}


def _experiment(run: dict, **distill_cfg) -> dict:
    return {
        "data": run["data"],
        "student": {"ratio": {"width": 0.5, "depth": 0.5}},
        "distill": {
            "alpha": 0.5,
            "matching": "both",
            "teacher_samples": 4,
            "temperature_start": 1.0,
            "temperature_end": 4.0,
            **distill_cfg,
        },
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "lr": 1e-3,
            "tensorboard": False,
            "device": "cpu",
            "early_stopping_patience": 0,
            "seed": 1,
        },
    }


def test_distill_end_to_end_resume_and_sample(teacher_run, tmp_path):
    from gwinfer.evaluation.posterior import sample_posterior
    from gwinfer.provenance import sha256_file

    out = distill(teacher_run["teacher"], _experiment(teacher_run), tmp_path / "student")
    student, meta = load_estimator(out)
    teacher, tmeta = load_estimator(teacher_run["teacher"])
    assert student.kind == "iaf" and n_parameters(student) < n_parameters(teacher)
    assert student.config.embedding.resnet.channels == (2, 4) and student.config.transforms == 1
    dist = meta["distillation"]
    assert dist["teacher_path"] == str(teacher_run["teacher"])
    assert dist["teacher_sha256"] == sha256_file(teacher_run["teacher"])
    assert dist["config"]["matching"] == "both" and dist["temperature_schedule"] == [1.0, 4.0]
    assert dist["n_parameters"] == {"teacher": n_parameters(teacher), "student": n_parameters(student)}
    assert meta["names"] == tmeta["names"] and meta["simulation"] == tmeta["simulation"]
    assert meta["training"]["epochs_completed"] == 2 and meta["gwinfer_version"]
    assert meta["experiment"]["data"]["simulation"] == teacher_run["data"]["simulation"]
    parents = [p["path"] for p in meta["provenance"]["parents"]]
    assert str(teacher_run["teacher"]) in parents and teacher_run["data"]["simulation"] in parents
    torch.testing.assert_close(student.theta_scale.std, teacher.theta_scale.std, rtol=0, atol=0)
    # the student is an ordinary posterior model
    from gwinfer.data.simulate import read_simulation
    from gwinfer.data.strain_dataset import injection_data

    x, _ = injection_data(read_simulation(teacher_run["data"]["simulation"]), 2)
    s = sample_posterior(student, x, 50, meta["names"])
    assert list(s) == meta["names"] and all(v.shape == (50,) for v in s.values())

    # resumable: the same command does no more work; more epochs continue; another alpha is refused
    log_csv = tmp_path / "student" / "log.csv"
    distill(teacher_run["teacher"], _experiment(teacher_run), tmp_path / "student")
    assert len(log_csv.read_text().splitlines()) == 3
    distill(teacher_run["teacher"], _experiment(teacher_run), tmp_path / "student", settings={"train": {"epochs": 3}})
    assert len(log_csv.read_text().splitlines()) == 4
    with pytest.raises(GwinferError, match="different model"):
        distill(teacher_run["teacher"], _experiment(teacher_run, alpha=0.3), tmp_path / "student")


def test_cli_distill_and_one_line_errors(teacher_run, tmp_path, capsys):
    import yaml

    from gwinfer.cli import main

    cfg = _experiment(teacher_run, matching="none")
    cfg["train"]["epochs"] = 1
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(cfg))
    teacher = str(teacher_run["teacher"])
    assert (
        main(["distill", "--teacher", teacher, "--config", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "cli")])
        == 0
    )
    assert "student written to" in capsys.readouterr().out
    assert (
        main(
            [
                "sample",
                "--model",
                str(tmp_path / "cli" / "model.pt"),
                "--data",
                teacher_run["data"]["simulation"],
                "--injection",
                "1",
                "--n",
                "20",
                "--out",
                str(tmp_path / "res"),
                "--no-corner",
            ]
        )
        == 0
    )
    capsys.readouterr()

    bad_ratio = _experiment(teacher_run)
    bad_ratio["student"] = {"ratio": {"width": 2.0, "depth": 0.5}}
    bad_alpha = _experiment(teacher_run, alpha=1.5)
    cases = [
        (bad_ratio, teacher, "student.ratio.width = 2.0 must be a number in (0.0, 1.0]"),
        (bad_alpha, teacher, "distill.alpha = 1.5 must be a number in [0.0, 1.0]"),
        (cfg, str(tmp_path / "missing.pt"), "teacher model"),
        ({**cfg, "extra": {}}, teacher, "sections data, student, distill, train"),
    ]
    for i, (experiment, teacher_file, message) in enumerate(cases):
        (tmp_path / f"bad{i}.yaml").write_text(yaml.safe_dump(experiment))
        assert (
            main(
                [
                    "distill",
                    "--teacher",
                    teacher_file,
                    "--config",
                    str(tmp_path / f"bad{i}.yaml"),
                    "--out",
                    str(tmp_path / f"bad{i}"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert err.startswith("gwinfer: error: ") and message in err and err.count("\n") == 1, err
        assert not (tmp_path / f"bad{i}").exists()  # refused before any work


def test_distill_refuses_a_teacher_of_other_data(teacher_run, tmp_path):
    from gwinfer.models.builder import save_estimator

    teacher, meta = load_estimator(teacher_run["teacher"])
    save_estimator(tmp_path / "other.pt", teacher, metadata={**meta, "names": ["a", "b", "c", "d", "e"]})
    with pytest.raises(GwinferError, match="infers"):
        distill(tmp_path / "other.pt", _experiment(teacher_run), tmp_path / "x")


def test_every_training_command_runs_data_parallel(teacher_run, tmp_path, capsys):
    """train-posterior and distill take --nproc like train: two gloo ranks under torchrun, one model.pt,
    a checkpoint recording world_size 2."""
    import yaml

    from gwinfer.cli import main
    from gwinfer.training.checkpoint import load_checkpoint

    cfg = _experiment(teacher_run, matching="none")
    cfg["train"]["epochs"] = 1
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(cfg))
    posterior = {
        "data": teacher_run["data"],
        "model": {"kind": "gaussian", "config": {"hidden": [8]}},
        "train": {"epochs": 1, "batch_size": 16, "tensorboard": False, "device": "cpu"},
    }
    (tmp_path / "posterior.yaml").write_text(yaml.safe_dump(posterior))
    runs = {
        "posterior": ["train-posterior", "--config", str(tmp_path / "posterior.yaml")],
        "student": ["distill", "--teacher", str(teacher_run["teacher"]), "--config", str(tmp_path / "student.yaml")],
    }
    for name, argv in runs.items():
        assert main([*argv, "--out", str(tmp_path / name), "--nproc", "2"]) == 0, name
        model, meta = load_estimator(tmp_path / name / "model.pt")
        assert meta["training"]["epochs_completed"] == 1
        assert load_checkpoint(tmp_path / name / "checkpoint.pt")["world_size"] == 2
    capsys.readouterr()

"""Training a two-detector frequency-domain event model (issue 15) from one YAML file.

The ``data`` section names a bank (:mod:`gwinfer.data.fd_bank`) instead of a simulation: examples are
simulated batch by batch (:class:`gwinfer.data.fd_dataset.FDEventDataset`: fresh extrinsic parameters,
noise curves and noise every epoch; fixed ones for validation). ``model`` is a posterior estimator spec
whose embedding is ``kind: fd`` (see ``configs/events/train-event.yaml``); ``train`` as everywhere.
:func:`gwinfer.training.posterior.train_posterior` hands such experiments here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.checks import positive_int
from gwinfer.config import from_dict, to_dict
from gwinfer.errors import GwinferError
from gwinfer.training.checkpoint import seed_everything
from gwinfer.training.run import (
    Run,
    Source,
    announced,
    even_sample,
    fit_and_save,
    fitting,
    run_metadata,
    train_settings,
)


@dataclass(frozen=True)
class EventDataConfig:
    """``data:`` section of an event-model experiment.

    bank: file of ``gwinfer fd-bank``. val_size: bank rows held out for validation (fixed draws and noise).
    noise_seed: seed of the training draws (validation: noise_seed + 1); split_seed: of the split.
    fit_samples: examples fitting the standardisation and the SVD basis. bands: noise features per
    detector (must equal the embedding's ``bands``). psd_scale, psd_tilt: ranges of the random level (ln PSD)
    and spectral tilt applied to the family's curves. limit: use only the first ``limit`` bank rows.
    """

    bank: str = ""
    val_size: int = 2000
    noise_seed: int = 0
    split_seed: int = 0
    fit_samples: int = 4096
    bands: int = 32
    psd_scale: float = float(np.log(2.0))
    psd_tilt: float = 0.25
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.bank:
            raise GwinferError("data.bank must name a bank file (gwinfer fd-bank --out ...)")
        positive_int(self.val_size, "data.val_size")
        positive_int(self.fit_samples, "data.fit_samples", minimum=2)
        positive_int(self.bands, "data.bands")
        if self.limit is not None:
            positive_int(self.limit, "data.limit", minimum=2)
        if not (self.psd_scale >= 0 and self.psd_tilt >= 0):
            raise GwinferError("data.psd_scale and data.psd_tilt must be >= 0")


def event_datasets(data: EventDataConfig) -> tuple[Any, Any, Any]:
    """(bank, training set, validation set) of a ``data`` section."""
    from gwinfer.data.fd_bank import read_bank
    from gwinfer.data.fd_dataset import FDEventDataset

    bank = read_bank(data.bank)
    n = len(bank) if data.limit is None else min(len(bank), data.limit)
    if n <= data.val_size:
        raise GwinferError(f"the bank has {n} rows; need more than data.val_size = {data.val_size}")
    order = np.random.default_rng(data.split_seed).permutation(n)
    opts = {"n_bands": data.bands, "psd_scale": data.psd_scale, "psd_tilt": data.psd_tilt}
    train_set = FDEventDataset(bank, np.sort(order[data.val_size :]), data.noise_seed, **opts)
    val_set = FDEventDataset(bank, np.sort(order[: data.val_size]), data.noise_seed + 1, fixed_noise=True, **opts)
    return bank, train_set, val_set


def event_metadata(bank: Any, train_set: Any) -> dict[str, Any]:
    """What an event model records about its data: all that ``gwinfer analyze`` needs to prepare an event
    (band, segment layout, window power, detectors), the prior, and the noise family's features (for the
    coverage check)."""
    from gwinfer.data.fd_bank import EVENT_PARAMETERS
    from gwinfer.data.fd_dataset import DETECTORS, asd_features

    return {
        "names": list(EVENT_PARAMETERS),
        "event_model": {
            "bank": asdict(bank.config),
            "detectors": list(DETECTORS),
            "bands": int(train_set.bands.shape[0]),
            "window_power": train_set.w,
            "psd_scale": train_set.psd_scale,
            "psd_tilt": train_set.psd_tilt,
            "family_names": list(bank.psd_names),
            "family_features": asd_features(bank.psds, train_set.bands).round(5).tolist(),
        },
        "bank_file": str(bank.path),
        "prior_text": str(bank.attrs["prior_text"]),
        "noise_std": 1.0,
    }


def train_event_model(raw: dict[str, Any], source: Source, out_dir: str | Path, resume: bool = True) -> Path:
    """Train the event-model experiment ``raw`` (sections loaded, settings merged) into ``out_dir``; return
    the path of ``model.pt``."""
    from gwinfer.models import build_estimator, save_estimator

    data = from_dict(EventDataConfig, raw["data"], "data")
    bands = raw["model"].get("config", {}).get("embedding", {}).get("bands", 32)
    if bands != data.bands:
        raise GwinferError(f"model embedding bands = {bands} must equal data.bands = {data.bands}")
    train_cfg = train_settings(raw)
    bank, train_set, val_set = event_datasets(data)
    seed_everything(train_cfg.seed)
    model = build_estimator(dict(raw["model"]), theta_dim=10, x_shape=train_set.x_shape)
    pick = even_sample(len(train_set), data.fit_samples)
    theta, x = train_set.batch(pick)
    _, signals = train_set.batch(pick, noise=False)
    with announced(fitting(len(pick))):
        model.fit_standardization(theta, x, signals)
    kept = model.embedding.kept_power(signals[: min(512, len(pick))])
    experiment = {"data": to_dict(data), "model": raw["model"], "train": to_dict(train_cfg)}
    metadata = {
        **event_metadata(bank, train_set),
        "svd_kept_power": {"median": float(kept.median()), "min": float(kept.min())},
        **run_metadata(
            "posterior-model", source, experiment, parents=[data.bank], libraries=("torch", "numpy", "zuko", "bilby")
        ),
    }
    return fit_and_save(
        Run(
            model,
            train_set,
            val_set,
            train_cfg,
            metadata,
            lambda path: save_estimator(path, model.cpu(), metadata=metadata),
            "event model",
        ),
        out_dir,
        resume,
    )

"""Training examples of a frequency-domain event model, simulated batch by batch from a bank (torch).

One example = (theta, x) for a bank waveform h0 (:mod:`gwinfer.data.fd_bank`) and FRESH draws of
everything else, from the bank's prior by inverse CDF (bilby's ``rescale``) with a generator seeded by
(seed, epoch, the batch's indices), so a resumed run sees the same batches as an uninterrupted one:

* extrinsic parameters: luminosity distance, theta_jn, phase, geocent_time (s from the trigger), ra (at
  Greenwich sidereal time 0), dec, psi; detector strain as in :mod:`gwinfer.detectors.frequency`;
* per detector a noise curve of the bank's family, times a random level ``exp(U(-a, a))`` and tilt
  ``(f / 100 Hz)^U(-b, b)`` (``psd_scale``, ``psd_tilt``): the model learns to read the curve it is given;
* whitening with that curve (window power ``w`` of bilby's Tukey window) and N(0, 1) noise.

x has shape (n_detectors, 2 n_bins + n_bands): [Re d_w, Im d_w, log-ASD in ``n_bands`` log-spaced bands
(ln of ASD / 1e-23)], theta (10,) in :data:`gwinfer.data.fd_bank.EVENT_PARAMETERS` order, float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gwinfer.data.fd_bank import EVENT_PARAMETERS, INTRINSIC, REFERENCE_DISTANCE, FDBank
from gwinfer.errors import GwinferError

DETECTORS = ("H1", "L1")
#: ASD unit of the band features: ln(ASD / ASD_UNIT).
ASD_UNIT = 1e-23
EXTRINSIC = ("luminosity_distance", "theta_jn", "phase", "geocent_time", "ra", "dec", "psi")


def window_power(duration: float, fs: float = 4096.0) -> float:
    """mean(window**2) of bilby's Tukey window (roll-off 0.2 s) on a ``duration`` s segment at ``fs`` Hz."""
    from gwinfer.detectors.frequency import tukey_window
    from gwinfer.detectors.segment import ROLL_OFF

    n = int(round(duration * fs))
    return float(np.mean(tukey_window(n, ROLL_OFF, fs) ** 2))


def asd_features(psd: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Band-averaged ln(ASD / 1e-23) (..., n_bands) of PSDs (..., n_bins) in 1/Hz."""
    return (0.5 * np.log(np.asarray(psd, dtype=float)) - np.log(ASD_UNIT)) @ bands.T


def network_input(fd: np.ndarray, psd: np.ndarray, bands: np.ndarray, duration: float, w: float) -> np.ndarray:
    """x (n_det, 2 n_bins + n_bands) float32 of frequency series ``fd`` (n_det, n_bins) strain/Hz on the band,
    their PSDs (n_det, n_bins) 1/Hz and window power ``w``: what the model was trained on."""
    from gwinfer.detectors.frequency import whitening_scale

    d = np.asarray(fd) / whitening_scale(psd, duration, w)
    return np.concatenate([d.real, d.imag, asd_features(psd, bands)], axis=-1).astype(np.float32)


class FDEventDataset(torch.utils.data.Dataset):
    """(theta, x) examples of ``bank`` rows ``indices`` (module docstring); batched by ``__getitems__``."""

    def __init__(
        self,
        bank: FDBank,
        indices: Sequence[int],
        seed: int,
        n_bands: int = 32,
        psd_scale: float = np.log(2.0),
        psd_tilt: float = 0.25,
        fixed_noise: bool = False,
    ) -> None:
        from gwinfer.detectors.frequency import band_matrix

        if bank.h_plus.shape[0] != len(bank):
            raise GwinferError("the bank was read without its waveforms (read_bank(..., waveforms=True))")
        self.bank, self.indices = bank, np.asarray(indices, dtype=np.int64)
        self.seed, self.epoch, self.fixed = int(seed), 0, bool(fixed_noise)
        self.psd_scale, self.psd_tilt = float(psd_scale), float(psd_tilt)
        self.prior = bank.load_prior()
        cfg = bank.config
        self.duration, self.pre = cfg.duration, cfg.duration - cfg.post_trigger
        self.bands = band_matrix(bank.frequencies, n_bands)
        self.w = window_power(cfg.duration)
        self.h0 = torch.from_numpy(bank.h_plus)
        self.log_psds = np.log(bank.psds)
        self.log_f100 = np.log(bank.frequencies / 100.0)
        self.x_shape = (len(DETECTORS), 2 * bank.frequencies.size + n_bands)

    def __len__(self) -> int:
        return int(self.indices.size)

    def set_epoch(self, epoch: int) -> None:
        """Fresh extrinsic parameters, noise curves and noise for every epoch (not for a fixed-noise set)."""
        self.epoch = 0 if self.fixed else int(epoch)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        theta, x = self.batch([i])
        return theta[0], x[0]

    def __getitems__(self, items: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        theta, x = self.batch(items)
        return list(zip(theta, x))

    # ------------------------------------------------------------------------------------------------
    def _rng(self, items: np.ndarray) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(items[0]), int(items.size), int(items.sum() % 2**31)])

    def draw_extrinsic(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` draws of the extrinsic parameters from the bank's prior (inverse CDF of uniforms)."""
        return {k: np.asarray(self.prior[k].rescale(rng.uniform(size=n)), dtype=float) for k in EXTRINSIC}

    def draw_log_psds(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, n_det, n_bins) ln noise curves (ln 1/Hz): family members with a random level and tilt."""
        k = rng.integers(0, self.log_psds.shape[0], size=(n, len(DETECTORS)))
        level = rng.uniform(-self.psd_scale, self.psd_scale, size=(n, len(DETECTORS), 1))
        tilt = rng.uniform(-self.psd_tilt, self.psd_tilt, size=(n, len(DETECTORS), 1))
        return self.log_psds[k] + level + tilt * self.log_f100

    def batch(self, items: Sequence[int], noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(theta (B, 10), x (B, n_det, 2 n_bins + n_bands)) float32 for positions ``items`` of this set;
        ``noise=False`` leaves the noise out (the same draws otherwise: for the embedding's SVD basis)."""
        from gwinfer.detectors.frequency import antenna_patterns, geocentre_delay

        items = np.asarray(items, dtype=np.int64)
        rows = self.indices[items]
        rng = self._rng(items)
        n = rows.size
        ext = self.draw_extrinsic(rng, n)
        log_psd = self.draw_log_psds(rng, n)
        c = np.cos(ext["theta_jn"])
        amp = REFERENCE_DISTANCE / ext["luminosity_distance"]
        # 1 / sqrt(S T w / 4) per bin (gwinfer.detectors.frequency.whitening_scale), from ln S
        inv_scale = torch.from_numpy(np.exp(-0.5 * (log_psd + np.log(self.duration * self.w / 4.0))).astype(np.float32))
        h0 = self.h0[torch.from_numpy(rows)]
        out = []
        for j, det in enumerate(DETECTORS):
            fp, fx = antenna_patterns(det, ext["ra"], ext["dec"], ext["psi"], 0.0)
            dt = geocentre_delay(det, ext["ra"], ext["dec"], 0.0)
            coef = amp * np.exp(1j * ext["phase"]) * (fp * (1 + c**2) / 2 - 1j * fx * c)
            shift = self.pre + ext["geocent_time"] + dt
            # the phase of exp(-2 pi i f shift) in float64, reduced to [0, 2 pi) before float32
            angle = np.mod(-2 * np.pi * np.outer(shift, self.bank.frequencies), 2 * np.pi)
            ramp = torch.polar(inv_scale[:, j], torch.from_numpy(angle.astype(np.float32)))
            out.append(h0 * ramp * torch.from_numpy(coef.astype(np.complex64))[:, None])
        hw = torch.stack(out, dim=1)  # (B, n_det, n_bins) whitened signal
        feats = torch.from_numpy(((0.5 * log_psd - np.log(ASD_UNIT)) @ self.bands.T).astype(np.float32))
        re, im = hw.real, hw.imag
        if noise:
            gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            nz = torch.randn((2, *hw.shape), generator=gen)
            re, im = re + nz[0], im + nz[1]
        x = torch.cat([re, im, feats], dim=-1)
        theta = np.stack([self._column(k, rows, ext) for k in EVENT_PARAMETERS], axis=1)
        return torch.from_numpy(theta).to(torch.float32), x

    def _column(self, key: str, rows: np.ndarray, ext: dict[str, np.ndarray]) -> np.ndarray:
        return self.bank.intrinsic[key][rows] if key in INTRINSIC else ext[key]

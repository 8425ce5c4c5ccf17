"""pesummary, the field's reader of parameter-estimation results, reads gwinfer's results with its *bilby*
reader (not its generic fallback): medians, source-frame columns, evidences and the data's detectors come back.

pesummary 1.8.1 pins numpy<2.4 and matplotlib<3.11 (``pip install --dry-run pesummary`` in gwinfer's venv would
downgrade numpy 2.4.6 -> 2.3.5 and matplotlib 3.11.2 -> 3.10.9), so it lives in a venv of its own and is not a
test extra. The result is written here with gwinfer and read there in a subprocess. Run it with::

    make pesummary-env                       # .pesummary-env: python3.11 venv with pesummary and bilby
    .venv/bin/python -m pytest -q tests/evaluation/test_pesummary.py

or point ``GWINFER_PESUMMARY_ENV`` at any venv holding pesummary (and bilby). Where pesummary imports in the
test's own interpreter, that one is used. Skipped (with the reason) when none is found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gwinfer.evaluation.posterior import make_result, save_result
from gwinfer.evaluation.records import likelihood_record

ROOT = Path(__file__).resolve().parents[2]
GPS = 1126259462.0

#: Run in the pesummary interpreter: read each file, print {file: {"reader", "medians", "sampler", "meta"}}.
READER = """
import json, sys, warnings
warnings.simplefilter("ignore")
import numpy as np
from pesummary.io import read
out = {}
for path in sys.argv[1:]:
    f = read(path)
    sd = f.samples_dict
    out[path] = {
        "reader": type(f).__module__,
        "medians": {k: float(np.median(np.asarray(sd[k]))) for k in sd.keys()},
        "sampler": {k: (float(v) if isinstance(v, (int, float, np.floating)) else v)
                    for k, v in f.extra_kwargs["sampler"].items()},
        "meta": {k: v for k, v in f.extra_kwargs["meta_data"].items() if isinstance(v, (str, int, float))},
    }
print("PESUMMARY-JSON" + json.dumps(out))
"""


def pesummary_python() -> str | None:
    """An interpreter that imports pesummary: this one, ``$GWINFER_PESUMMARY_ENV``, or ``.pesummary-env``."""
    try:
        import pesummary  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    for env in (os.environ.get("GWINFER_PESUMMARY_ENV"), ROOT / ".pesummary-env"):
        if env and (Path(env) / "bin" / "python").is_file():
            return str(Path(env) / "bin" / "python")
    return None


PYTHON = pesummary_python()
pytestmark = pytest.mark.skipif(
    PYTHON is None, reason="pesummary not found: make pesummary-env (or set GWINFER_PESUMMARY_ENV to a venv with it)"
)


def test_pesummary_reads_gwinfer_results_with_its_bilby_reader(tmp_path):
    rng = np.random.default_rng(41)
    n = 3000
    samples = {
        "chirp_mass": rng.normal(30.0, 1.0, n),
        "mass_ratio": rng.uniform(0.6, 0.95, n),
        "chi_1": rng.uniform(-0.5, 0.5, n),
        "chi_2": rng.uniform(-0.5, 0.5, n),
        "luminosity_distance": rng.uniform(250.0, 700.0, n),
        "geocent_time": GPS + 0.42 + rng.normal(0.0, 0.004, n),
    }
    injection = {k: float(v[0]) for k, v in samples.items()}  # complete, as `gwinfer sample --injection` writes
    like = likelihood_record(None, {"H1": {"psd": None}, "L1": {"psd": None}}, start_time=GPS - 2.0)
    result = make_result(
        samples,
        label="ev",
        injection_parameters=injection,
        meta_data={"likelihood": like},
        log_evidence=-10.0,
        log_evidence_err=0.2,
        log_noise_evidence=-15.5,
    )
    paths = [str(save_result(result, tmp_path / f"ev.{ext}", corner=False)["result"]) for ext in ("json", "hdf5")]
    run = subprocess.run(
        [PYTHON, "-c", READER, *paths], capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    read = json.loads(run.stdout.split("PESUMMARY-JSON", 1)[1])
    post = result.posterior
    for path in paths:
        got = read[path]
        assert got["reader"] == "pesummary.gw.file.formats.bilby", got["reader"]  # not the generic fallback
        med = got["medians"]
        for key in ("chirp_mass", "mass_1", "luminosity_distance", "chi_eff", "redshift", "mass_1_source"):
            assert med[key] == pytest.approx(float(np.median(post[key].to_numpy())), rel=1e-12), key
        assert med["geocent_time"] == pytest.approx(float(np.median(samples["geocent_time"])), abs=1e-6)
        assert med["spin_1z"] == pytest.approx(float(np.median(samples["chi_1"])), rel=1e-12)  # pesummary's name
        assert got["sampler"]["ln_evidence"] == -10.0 and got["sampler"]["ln_bayes_factor"] == 5.5
        assert got["sampler"]["nsamples"] == n
        assert got["meta"]["IFOs"] == "H1 L1" and got["meta"]["start_time"] == GPS - 2.0

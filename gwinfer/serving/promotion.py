"""``gwinfer promote``: label a version production (or development) and switch a running server to it.

:func:`promote` validates a version (folder exists, the model loads and runs a test inference; with
thresholds, the server's live shadow metrics), rewrites ``labels.json``
(:mod:`gwinfer.serving.repository.labels`) and ``config.pbtxt``'s ``version_policy`` (so a real Triton
serves the same production version, :func:`gwinfer.serving.repository.config.set_version_policy`) and,
given a server URL, asks the running server to load them (``POST /v2/repository/models/<name>/load``):
the server switches routing in one step, without a restart and without failing in-flight requests.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path
from gwinfer.serving.repository.config import read_config, set_version_policy, version_policy_versions
from gwinfer.serving.repository.labels import LABELS_FILE, STAGES, Labels, read_labels, write_labels
from gwinfer.serving.repository.layout import CONFIG_FILE, check_name, list_versions
from gwinfer.serving.runtime.versions import check_version_runs

log = logging.getLogger(__name__)


# --- talking to a server -------------------------------------------------------------------------------
def server_url(url: str) -> str:
    """``http://host:port`` of ``url`` (``host:port``, tritonclient's form, gets ``http://``)."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def http_json(method: str, url: str, token: str | None = None, body: dict | None = None, timeout: float = 60.0) -> Any:
    """The decoded JSON answer of one request; a one-line GwinferError for HTTP and connection errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            message = json.loads(raw).get("error", "")
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace")[:200]
        raise GwinferError(f"{method} {url}: HTTP {err.code}: {message}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise GwinferError(f"cannot reach {url}: {reason}") from None
    return json.loads(raw) if raw.strip() else {}


def monitor_url(url: str, model: str) -> str:
    """The shadow monitor endpoint of ``model`` on the server at ``url``."""
    return f"{server_url(url)}/v2/models/{model}/monitor"


def load_url(url: str, model: str) -> str:
    """The repository "load" endpoint of ``model`` on the server at ``url``."""
    return f"{server_url(url)}/v2/repository/models/{model}/load"


def fmt_number(x: Any) -> str:
    """A metric for a message: 4 significant digits, or "n/a"."""
    return "n/a" if x is None else f"{x:.4g}"


def check_monitor(
    mon: dict[str, Any],
    model: str,
    version: int,
    production: int | None,
    min_count: int | None,
    max_mean_abs_diff: float | None,
    max_rel_rms_diff: float | None,
) -> str:
    """A one-line summary of a monitor snapshot that passes the thresholds; else a one-line GwinferError."""
    dev = mon.get("development")
    if dev is None:
        raise GwinferError(
            f"refusing: the server has no development version of {model!r} to compare "
            f"(label version {version} with --stage development first)"
        )
    if str(dev) != str(version):
        raise GwinferError(f"refusing: the server compares development version {dev} of {model!r}, not {version}")
    if production is not None and str(mon.get("production")) != str(production):
        raise GwinferError(
            f"refusing: the server's production version of {model!r} is {mon.get('production')}, "
            f"labels.json says {production}; load the model on the server first"
        )
    count, errors = int(mon.get("count", 0)), int(mon.get("errors", 0))
    if errors:
        raise GwinferError(
            f"refusing: development version {version} failed on {errors} mirrored request(s): "
            f"{mon.get('last_error', '')}"
        )
    if min_count is not None and count < min_count:
        raise GwinferError(
            f"refusing: only {count} mirrored inference(s) compared for {model!r} (--min-count {min_count})"
        )
    parts = []
    for name, o in sorted((mon.get("outputs") or {}).items()):
        if int(o.get("nonfinite", 0)):
            raise GwinferError(
                f"refusing: output {name!r} of version {version} differs by a non-finite amount "
                f"in {o['nonfinite']} element(s)"
            )
        mad, rel = o.get("mean_abs_diff"), o.get("rel_rms_diff")
        if max_mean_abs_diff is not None and not (mad is not None and mad <= max_mean_abs_diff):
            raise GwinferError(
                f"refusing: mean_abs_diff of output {name!r} is {fmt_number(mad)} > {max_mean_abs_diff:g} "
                f"over {count} inference(s)"
            )
        if max_rel_rms_diff is not None and not (rel is not None and rel <= max_rel_rms_diff):
            raise GwinferError(
                f"refusing: rel_rms_diff of output {name!r} is {fmt_number(rel)} > {max_rel_rms_diff:g} "
                f"over {count} inference(s)"
            )
        parts.append(f"{name}: mean |diff| {fmt_number(mad)}, rel rms {fmt_number(rel)}")
    if not parts and (max_mean_abs_diff is not None or max_rel_rms_diff is not None):
        raise GwinferError(f"refusing: no output of {model!r} has been compared yet")
    return f"{count} inferences compared ({'; '.join(parts) or 'no outputs'})"


# --- promote -------------------------------------------------------------------------------------------
def promote(
    repo: str | Path,
    model: str,
    version: int,
    stage: str = "production",
    url: str | None = None,
    token: str | None = None,
    min_count: int | None = None,
    max_mean_abs_diff: float | None = None,
    max_rel_rms_diff: float | None = None,
    keep_previous: bool = False,
    triton_policy: bool = True,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Label ``version`` of ``model`` as production (or development); returns a summary dict.

    Steps (any failure is a one-line GwinferError and leaves everything unchanged):

    1. the version folder exists and the model loads and runs a test inference on zeros;
    2. with thresholds (``min_count``, ``max_mean_abs_diff``, ``max_rel_rms_diff``; production only,
       they need ``url``): the server's monitor compares exactly this development version against the
       current production, has no failed mirrored request, no non-finite difference, at least
       ``min_count`` compared inferences and each output's metric within the limit;
    3. labels.json is rewritten atomically: production = ``version``; the development label is dropped,
       or with ``keep_previous`` set to the old production (a rollback candidate, kept under shadow).
       ``stage="development"`` only sets development = ``version`` (a production label must exist);
    4. with ``triton_policy`` config.pbtxt's version_policy becomes ``specific { versions: [production] }``
       so a real Triton serves the same production version for unversioned requests;
    5. with ``url`` the running server is asked to load the model (new labels, new version folders); if
       it refuses, labels.json and config.pbtxt are restored.
    """
    if stage not in STAGES:
        raise GwinferError(f"stage {stage!r}; choose one of {list(STAGES)}")
    check_name(model)
    model_dir = Path(repo) / model
    if not (model_dir / CONFIG_FILE).is_file():
        raise GwinferError(f"no model {model!r} in the repository {repo} (no {model_dir / 'config.pbtxt'})")
    if isinstance(version, bool) or not isinstance(version, int):
        raise GwinferError(f"version {version!r} must be an integer")
    versions = list_versions(model_dir)
    if version not in versions:
        raise GwinferError(f"unknown version {version} of model {model!r}; versions: {versions}")
    thresholds = {
        "--min-count": min_count,
        "--max-mean-abs-diff": max_mean_abs_diff,
        "--max-rel-rms-diff": max_rel_rms_diff,
    }
    given = [k for k, v in thresholds.items() if v is not None]
    if given and stage != "production":
        raise GwinferError(f"{', '.join(given)} apply to promotion to production, not to --stage {stage}")
    if given and not url:
        raise GwinferError(f"{', '.join(given)} need --url: the shadow metrics live in the running server")
    for k, v in thresholds.items():
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise GwinferError(f"{k} = {v!r} must be a finite number >= 0")

    old = read_labels(model_dir, check_versions=False)  # labels naming a deleted version can be repaired
    if stage == "development":
        if old is None:
            raise GwinferError(
                f"model {model!r} has no production label yet; first run gwinfer promote --model "
                f"{model} --version N with N the version that serves production now"
            )
        if version == old.production:
            raise GwinferError(f"version {version} is the production version of {model!r}")
    elif old is not None and old.production == version:
        return {
            "model": model,
            "labels": old.to_json(),
            "changed": False,
            "message": f"{model}: version {version} is already production; nothing to do",
        }

    cfg = read_config(model_dir)
    check_version_runs(model_dir, cfg, version)
    summary = ""
    if given:
        mon = http_json("GET", monitor_url(url, model), token, timeout=timeout)
        summary = check_monitor(
            mon, model, version, old.production if old else None, min_count, max_mean_abs_diff, max_rel_rms_diff
        )

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if stage == "development":
        new = Labels(old.production, version, now)
    else:
        keep = old.production if (keep_previous and old is not None) else None
        new = Labels(version, keep, now)

    labels_path, config_path = model_dir / LABELS_FILE, model_dir / CONFIG_FILE
    old_labels_text = labels_path.read_text() if labels_path.is_file() else None
    old_config_text = config_path.read_text()
    new_config_text = None
    if triton_policy and version_policy_versions(cfg) != [new.production]:
        new_config_text = set_version_policy(old_config_text, [new.production])
    write_labels(model_dir, new)
    if new_config_text is not None:
        with atomic_path(config_path) as tmp:
            tmp.write_text(new_config_text)
    loaded = None
    if url:
        try:
            loaded = http_json("POST", load_url(url, model), token, body={}, timeout=timeout)
        except GwinferError as err:
            restore(labels_path, old_labels_text)
            if new_config_text is not None:
                restore(config_path, old_config_text)
            raise GwinferError(f"labels.json left unchanged: the server did not load the new labels ({err})") from None
    before = (
        f"production {old.production}" + (f", development {old.development}" if old.development else "")
        if old
        else "no labels"
    )
    after = f"production {new.production}" + (f", development {new.development}" if new.development else "")
    message = (
        f"{model}: {before} -> {after}"
        + (f" ({summary})" if summary else "")
        + (f"; config.pbtxt version_policy specific [{new.production}]" if new_config_text else "")
        + (f"; server {server_url(url)} switched" if url else "")
    )
    log.debug("%s", message)
    return {"model": model, "labels": new.to_json(), "changed": True, "server": loaded, "message": message}


def restore(path: Path, text: str | None) -> None:
    """Put back a file's previous text atomically (None: it did not exist, so remove it)."""
    if text is None:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)

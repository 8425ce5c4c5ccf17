"""Production and development versions of a served model, and ``gwinfer promote``.

Labels live in one small JSON file per model, next to its ``config.pbtxt``::

    REPO/<name>/labels.json      {"production": 2, "development": 3, "updated": "2026-11-23T10:00:00+00:00"}

* ``production`` (required): the version that answers requests without an explicit version.
* ``development`` (optional, != production): a candidate; ``gwinfer serve`` mirrors production requests
  to it after answering them and compares the outputs (:mod:`gwinfer.serving.shadow`).
* ``updated``: when the file was written (informational).

The file is written atomically (temporary file + rename, :func:`write_labels`) and validated on every
read and write: an object with exactly these keys, versions integers >= 1 that exist as version folders.
Real Triton ignores ``labels.json``; for Triton, what production is comes from ``config.pbtxt``'s
``version_policy``, which :func:`promote` sets to ``specific { versions: [<production>] }`` (comments and
the rest of the file are kept; :func:`set_version_policy`).

:func:`promote` (``gwinfer promote``) validates a version (folder exists, the model loads and runs a
test inference; with thresholds, the server's live shadow metrics), rewrites the labels and, given a
server URL, asks the running server to load them (``POST /v2/repository/models/<name>/load``): the
server switches routing in one step, without a restart and without failing in-flight requests.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path
from gwinfer.serving.repository import _TOKEN, check_name, list_versions, parse_config, read_config

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
LABEL_KEYS = ("production", "development", "updated")
STAGES = ("production", "development")


# --- labels -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labels:
    """The labels of one model: production version, optional development version."""

    production: int
    development: int | None = None
    updated: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"production": self.production}
        if self.development is not None:
            out["development"] = self.development
        if self.updated is not None:
            out["updated"] = self.updated
        return out

    def as_strings(self) -> dict[str, str]:
        """{"production": "2", "development": "3"} (KServe v2 writes versions as strings)."""
        out = {"production": str(self.production)}
        if self.development is not None:
            out["development"] = str(self.development)
        return out

    def label_of(self, version: int) -> str | None:
        return "production" if version == self.production else "development" if version == self.development else None


def _version_number(value: Any, key: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GwinferError(f"{where}: {key!r} must be a version number (an integer >= 1), got {value!r}")
    return value


def parse_labels(data: Any, where: str = LABELS_FILE) -> Labels:
    """Labels of a decoded labels.json; one-line error naming what is wrong."""
    if not isinstance(data, dict):
        raise GwinferError(f"{where}: must be a JSON object like {{\"production\": 1, \"development\": 2}}")
    unknown = sorted(set(data) - set(LABEL_KEYS))
    if unknown:
        raise GwinferError(f"{where}: unknown key(s) {unknown}; allowed: {list(LABEL_KEYS)}")
    if "production" not in data:
        raise GwinferError(f"{where}: no 'production' version")
    production = _version_number(data["production"], "production", where)
    development = data.get("development")
    if development is not None:
        development = _version_number(development, "development", where)
        if development == production:
            raise GwinferError(f"{where}: development and production are both version {production}")
    updated = data.get("updated")
    if updated is not None and not isinstance(updated, str):
        raise GwinferError(f"{where}: 'updated' must be a string")
    return Labels(production, development, updated)


def check_labels(labels: Labels, versions: Any, where: str = LABELS_FILE) -> Labels:
    """``labels`` if each labelled version is in ``versions``; else a one-line error."""
    available = sorted(versions)
    for stage in STAGES:
        v = getattr(labels, stage)
        if v is not None and v not in available:
            raise GwinferError(f"{where}: {stage} version {v} does not exist; versions: {available}")
    return labels


def read_labels(model_dir: str | Path, check_versions: bool = True) -> Labels | None:
    """The labels of a model folder (None without a labels.json), validated against its version folders."""
    p = Path(model_dir) / LABELS_FILE
    try:
        text = p.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise GwinferError(f"cannot read {p}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GwinferError(f"{p} is not valid JSON ({err.msg} at line {err.lineno})") from None
    labels = parse_labels(data, str(p))
    return check_labels(labels, list_versions(model_dir), str(p)) if check_versions else labels


def write_labels(model_dir: str | Path, labels: Labels) -> Path:
    """Validate ``labels`` against the version folders and write labels.json atomically."""
    p = Path(model_dir) / LABELS_FILE
    check_labels(parse_labels(labels.to_json(), str(p)), list_versions(model_dir), str(p))
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(labels.to_json(), indent=2) + "\n")
    return p


# --- Triton's version_policy --------------------------------------------------------------------------
def _top_level_spans(text: str, key: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the top-level fields ``key`` of a config.pbtxt text."""
    toks = []
    pos = 0
    body = text.rstrip()
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if not m or m.end() == pos:
            raise GwinferError(f"config.pbtxt: cannot parse at character {pos}")
        if m.lastgroup != "comment":
            toks.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup), m.end()))
        pos = m.end()
    spans, depth, i = [], 0, 0
    while i < len(toks):
        kind, tok, start, _ = toks[i]
        if depth == 0 and kind == "ident" and tok == key:
            j = i + 1
            if j < len(toks) and toks[j][1] == ":":
                j += 1
            if j >= len(toks) or toks[j][0] != "punct" or toks[j][1] not in ("{", "<"):
                raise GwinferError(f"config.pbtxt: {key} must be a message {{ ... }}")
            level = 0
            while j < len(toks):
                if toks[j][0] == "punct" and toks[j][1] in ("{", "<", "["):
                    level += 1
                elif toks[j][0] == "punct" and toks[j][1] in ("}", ">", "]"):
                    level -= 1
                    if level == 0:
                        break
                j += 1
            if j >= len(toks):
                raise GwinferError(f"config.pbtxt: unterminated {key}")
            end = toks[j][3]
            while end < len(text) and text[end] in " \t,;":
                end += 1
            if end < len(text) and text[end] == "\n":
                end += 1
            spans.append((start, end))
            i = j + 1
            continue
        if kind == "punct" and tok in ("{", "<", "["):
            depth += 1
        elif kind == "punct" and tok in ("}", ">", "]"):
            depth -= 1
        i += 1
    return spans


def set_version_policy(text: str, versions: list[int]) -> str:
    """``config.pbtxt`` text with its version_policy set to ``specific { versions: [...] }``.

    Only the top-level ``version_policy`` field is replaced (appended if absent); comments, order and
    every other field are kept byte for byte. The result is re-parsed and checked.
    """
    new = text
    for start, end in reversed(_top_level_spans(text, "version_policy")):
        new = new[:start] + new[end:]
    listed = ", ".join(str(int(v)) for v in versions)
    new = new.rstrip() + "\n" + f"version_policy {{ specific {{ versions: [ {listed} ] }} }}\n"
    old_cfg, new_cfg = parse_config(text), parse_config(new)
    old_cfg.pop("version_policy", None)
    policy = new_cfg.pop("version_policy", None)
    got = policy.get("specific", {}).get("versions") if isinstance(policy, dict) else None
    if new_cfg != old_cfg or (got if isinstance(got, list) else [got]) != [int(v) for v in versions]:
        raise GwinferError("could not rewrite the version_policy of config.pbtxt safely; edit it by hand")
    return new


def version_policy_versions(cfg: dict[str, Any]) -> list[int] | None:
    """The versions of a ``specific`` version_policy (None for other or no policy)."""
    policy = cfg.get("version_policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("specific"), dict):
        return None
    got = policy["specific"].get("versions")
    return [int(v) for v in (got if isinstance(got, list) else [got])]


# --- validation of a version -------------------------------------------------------------------------
def check_version_runs(model_dir: Path, cfg: dict[str, Any], version: int) -> None:
    """One-line error unless ``version`` loads and answers a test inference on zeros with the config's shapes."""
    from gwinfer.serving.server import load_version

    mv = load_version(model_dir, dict(cfg, name=model_dir.name), version, threads=1, max_sequences=1)
    if mv.state != "READY":
        raise GwinferError(f"version {version} of model {model_dir.name!r} does not load: {mv.reason}")
    lead = [1] if mv.max_batch_size > 0 else []
    inputs = {t.name: np.zeros(lead + [d if d > 0 else 1 for d in t.dims], t.numpy_dtype) for t in mv.inputs}
    if mv.streaming is not None:  # the graph reads the window instead of the update
        s = mv.streaming
        inputs = {s["graph_input"]: np.zeros((1, int(s["channels"]), int(s["kernel"])), np.float32),
                  **{k: inputs[k] for k in s["forwarded_inputs"]}}
        expected = {g: None for g in s["graph_outputs"]}
    else:
        expected = {t.name: lead + list(t.dims) for t in mv.outputs}
    try:
        out = mv.runner(inputs)
    except Exception as err:  # noqa: BLE001 (reported as one line)
        raise GwinferError(f"version {version} of model {model_dir.name!r} fails a test inference on zeros: "
                           f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    for name, shape in expected.items():
        got = out.get(name)
        if got is None:
            raise GwinferError(f"version {version} of model {model_dir.name!r} returns no output {name!r}")
        if shape is not None and (len(got.shape) != len(shape)
                                  or any(s >= 0 and s != g for s, g in zip(shape, got.shape))):
            raise GwinferError(f"version {version} of model {model_dir.name!r}: output {name!r} has shape "
                               f"{list(got.shape)}; the config says {shape}")


# --- talking to a server -------------------------------------------------------------------------------
def server_url(url: str) -> str:
    """``http://host:port`` of ``url`` (``host:port``, tritonclient's form, gets ``http://``)."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def http_json(method: str, url: str, token: str | None = None, body: dict | None = None,
              timeout: float = 60.0) -> Any:
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
    return f"{server_url(url)}/v2/models/{model}/monitor"


def load_url(url: str, model: str) -> str:
    return f"{server_url(url)}/v2/repository/models/{model}/load"


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def check_monitor(mon: dict[str, Any], model: str, version: int, production: int | None,
                  min_count: int | None, max_mean_abs_diff: float | None,
                  max_rel_rms_diff: float | None) -> str:
    """A one-line summary of a monitor snapshot that passes the thresholds; else a one-line GwinferError."""
    dev = mon.get("development")
    if dev is None:
        raise GwinferError(f"refusing: the server has no development version of {model!r} to compare "
                           f"(label version {version} with --stage development first)")
    if str(dev) != str(version):
        raise GwinferError(f"refusing: the server compares development version {dev} of {model!r}, not {version}")
    if production is not None and str(mon.get("production")) != str(production):
        raise GwinferError(f"refusing: the server's production version of {model!r} is {mon.get('production')}, "
                           f"labels.json says {production}; load the model on the server first")
    count, errors = int(mon.get("count", 0)), int(mon.get("errors", 0))
    if errors:
        raise GwinferError(f"refusing: development version {version} failed on {errors} mirrored request(s): "
                           f"{mon.get('last_error', '')}")
    if min_count is not None and count < min_count:
        raise GwinferError(f"refusing: only {count} mirrored inference(s) compared for {model!r} "
                           f"(--min-count {min_count})")
    parts = []
    for name, o in sorted((mon.get("outputs") or {}).items()):
        if int(o.get("nonfinite", 0)):
            raise GwinferError(f"refusing: output {name!r} of version {version} differs by a non-finite amount "
                               f"in {o['nonfinite']} element(s)")
        mad, rel = o.get("mean_abs_diff"), o.get("rel_rms_diff")
        if max_mean_abs_diff is not None and not (mad is not None and mad <= max_mean_abs_diff):
            raise GwinferError(f"refusing: mean_abs_diff of output {name!r} is {_fmt(mad)} > {max_mean_abs_diff:g} "
                               f"over {count} inference(s)")
        if max_rel_rms_diff is not None and not (rel is not None and rel <= max_rel_rms_diff):
            raise GwinferError(f"refusing: rel_rms_diff of output {name!r} is {_fmt(rel)} > {max_rel_rms_diff:g} "
                               f"over {count} inference(s)")
        parts.append(f"{name}: mean |diff| {_fmt(mad)}, rel rms {_fmt(rel)}")
    if not parts and (max_mean_abs_diff is not None or max_rel_rms_diff is not None):
        raise GwinferError(f"refusing: no output of {model!r} has been compared yet")
    return f"{count} inferences compared ({'; '.join(parts) or 'no outputs'})"


# --- promote -------------------------------------------------------------------------------------------
def promote(repo: str | Path, model: str, version: int, stage: str = "production", url: str | None = None,
            token: str | None = None, min_count: int | None = None, max_mean_abs_diff: float | None = None,
            max_rel_rms_diff: float | None = None, keep_previous: bool = False, triton_policy: bool = True,
            timeout: float = 60.0) -> dict[str, Any]:
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
    if not (model_dir / "config.pbtxt").is_file():
        raise GwinferError(f"no model {model!r} in the repository {repo} (no {model_dir / 'config.pbtxt'})")
    if isinstance(version, bool) or not isinstance(version, int):
        raise GwinferError(f"version {version!r} must be an integer")
    versions = list_versions(model_dir)
    if version not in versions:
        raise GwinferError(f"unknown version {version} of model {model!r}; versions: {versions}")
    thresholds = {"--min-count": min_count, "--max-mean-abs-diff": max_mean_abs_diff,
                  "--max-rel-rms-diff": max_rel_rms_diff}
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
            raise GwinferError(f"model {model!r} has no production label yet; first run gwinfer promote --model "
                               f"{model} --version N with N the version that serves production now")
        if version == old.production:
            raise GwinferError(f"version {version} is the production version of {model!r}")
    elif old is not None and old.production == version:
        return {"model": model, "labels": old.to_json(), "changed": False,
                "message": f"{model}: version {version} is already production; nothing to do"}

    cfg = read_config(model_dir)
    check_version_runs(model_dir, cfg, version)
    summary = ""
    if given:
        mon = http_json("GET", monitor_url(url, model), token, timeout=timeout)
        summary = check_monitor(mon, model, version, old.production if old else None, min_count,
                                max_mean_abs_diff, max_rel_rms_diff)

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if stage == "development":
        new = Labels(old.production, version, now)
    else:
        keep = old.production if (keep_previous and old is not None) else None
        new = Labels(version, keep, now)

    labels_path, config_path = model_dir / LABELS_FILE, model_dir / "config.pbtxt"
    old_labels_text = labels_path.read_text() if labels_path.is_file() else None
    old_config_text = config_path.read_text()
    new_config_text = None
    if triton_policy and version_policy_versions(parse_config(old_config_text)) != [new.production]:
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
            _restore(labels_path, old_labels_text)
            if new_config_text is not None:
                _restore(config_path, old_config_text)
            raise GwinferError(f"labels.json left unchanged: the server did not load the new labels ({err})") from None
    before = (f"production {old.production}" + (f", development {old.development}" if old.development else "")
              if old else "no labels")
    after = f"production {new.production}" + (f", development {new.development}" if new.development else "")
    message = (f"{model}: {before} -> {after}" + (f" ({summary})" if summary else "")
               + (f"; config.pbtxt version_policy specific [{new.production}]" if new_config_text else "")
               + (f"; server {server_url(url)} switched" if url else ""))
    log.debug("%s", message)
    return {"model": model, "labels": new.to_json(), "changed": True, "server": loaded, "message": message}


def _restore(path: Path, text: str | None) -> None:
    if text is None:
        path.unlink(missing_ok=True)
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text)

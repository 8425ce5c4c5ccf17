"""Triton-style model repository: layout, ``config.pbtxt`` writer/parser and tensor specs.

Layout (NVIDIA Triton's, so ``tritonserver --model-repository=REPO`` can serve it unchanged)::

    REPO/<name>/config.pbtxt            model configuration (protobuf text format, the subset below)
    REPO/<name>/<version>/model.onnx    platform onnxruntime_onnx   (or model.pt: pytorch_libtorch)
    REPO/<name>/<version>/gwinfer.json  provenance of that version (ignored by Triton)

With ``backend: "python"`` instead of a platform (``gwinfer export --backend python``) the version folder
also holds ``model.py``, a Triton Python-backend model that runs ``model.onnx`` with onnxruntime (for
Triton builds without the onnxruntime backend); gwinfer's own server runs the same ``model.onnx``.

The parser reads the protobuf text-format subset that :func:`format_config` writes (and most
hand-written Triton configs): scalar fields ``key: value`` (numbers, quoted strings, enum identifiers,
true/false), messages ``key { ... }`` and lists ``key: [ ... ]`` / ``key [ {...}, {...} ]``, ``#`` comments.
Repeated fields (``input``, ``output``, ``instance_group``, ``dims``, ``gpus``, nested ``parameters``) always
come back as lists.

The model-level ``parameters`` map (``parameters { key: "k" value: { string_value: "v" } }``, repeated)
comes back in the form Triton's model-configuration endpoints give it, ``{"k": {"string_value": "v"}}``,
and :func:`format_config` writes that form back as key/value entries; :func:`config_parameters` reads
it as ``{"k": "v"}``. gwinfer's posterior exports use it for ``parameter_names``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.errors import GwinferError

PLATFORM_FILES = {"onnxruntime_onnx": "model.onnx", "pytorch_libtorch": "model.pt"}
FORMAT_PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}
# Triton backends (config ``backend:`` without ``platform:``) gwinfer serves, and the platform whose model
# file it runs for them: a gwinfer Python-backend export is model.py + model.onnx
BACKEND_PLATFORMS = {"python": "onnxruntime_onnx"}
REPEATED = {"input", "output", "instance_group", "dims", "gpus", "parameters"}

# Triton config data types <-> KServe v2 datatypes <-> numpy
CONFIG_TO_V2 = {
    "TYPE_FP32": "FP32", "TYPE_FP64": "FP64", "TYPE_FP16": "FP16", "TYPE_INT64": "INT64",
    "TYPE_INT32": "INT32", "TYPE_INT16": "INT16", "TYPE_INT8": "INT8", "TYPE_UINT8": "UINT8",
    "TYPE_BOOL": "BOOL",
}  # fmt: skip
V2_TO_NUMPY = {
    "FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
    "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class TensorSpec:
    """One input/output: name, KServe v2 datatype ("FP32") and dims *without* the batch dimension."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(V2_TO_NUMPY[self.datatype])

    def to_config(self) -> dict[str, Any]:
        config_type = next(k for k, v in CONFIG_TO_V2.items() if v == self.datatype)
        return {"name": self.name, "data_type": config_type, "dims": list(self.dims)}

    @classmethod
    def from_config(cls, entry: dict[str, Any], where: str) -> TensorSpec:
        try:
            name, data_type, dims = entry["name"], entry["data_type"], entry["dims"]
        except (KeyError, TypeError):
            raise GwinferError(f"{where}: each input/output needs name, data_type and dims") from None
        if data_type not in CONFIG_TO_V2:
            raise GwinferError(f"{where}: data_type {data_type!r} is not supported; use one of {sorted(CONFIG_TO_V2)}")
        if not all(isinstance(d, int) for d in dims):
            raise GwinferError(f"{where}: dims of {name!r} must be integers, got {dims!r}")
        return cls(str(name), CONFIG_TO_V2[data_type], tuple(int(d) for d in dims))


def check_name(name: str) -> str:
    """``name`` if it is a usable model name (letters, digits, ``_ . -``), else a one-line error."""
    if not isinstance(name, str) or not _NAME.match(name) or name.startswith("."):
        raise GwinferError(f"model name {name!r} must be letters, digits, '_', '.' or '-' (not starting with '.')")
    return name


# --- config.pbtxt writer -------------------------------------------------------------------------
def _format_scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        # enum values (TYPE_FP32, KIND_CPU) are bare identifiers; everything else is quoted
        if key in {"data_type", "kind", "format"} and re.fullmatch(r"[A-Z][A-Z0-9_]*", value):
            return value
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise GwinferError(f"config field {key!r}: cannot write a {type(value).__name__}")


def _format_message(msg: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in msg.items():
        if isinstance(value, dict):
            if value:
                lines.append(f"{pad}{key} {{")
                lines += _format_message(value, indent + 1)
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{key} {{ }}")
        elif isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                lines.append(f"{pad}{key} [")
                for i, v in enumerate(value):
                    lines.append(f"{pad}  {{")
                    lines += _format_message(v, indent + 2)
                    lines.append(f"{pad}  }}" + ("," if i < len(value) - 1 else ""))
                lines.append(f"{pad}]")
            else:
                lines.append(f"{pad}{key}: [ " + ", ".join(_format_scalar(key, v) for v in value) + " ]")
        else:
            lines.append(f"{pad}{key}: {_format_scalar(key, value)}")
    return lines


def _format_parameters(params: Any) -> list[str]:
    """``parameters`` (Triton's JSON map form ``{key: {"string_value": v}}``) as repeated key/value entries."""
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise GwinferError('config field "parameters" must map names to {"string_value": ...}')
    lines = []
    for key, value in params.items():
        lines += ["parameters {", f"  key: {_format_scalar('key', str(key))}", "  value {"]
        lines += _format_message(value, 2)
        lines += ["  }", "}"]
    return lines


def format_config(config: dict[str, Any]) -> str:
    """Protobuf text format of a Triton model configuration given as a nested dict.

    The model-level ``parameters`` map is given as Triton's JSON form ``{key: {"string_value": v}}``
    (what :func:`parse_config` returns) and written as repeated ``parameters { key: ... value { ... } }``.
    """
    lines: list[str] = []
    for key, value in config.items():
        if key == "parameters":
            lines += _format_parameters(value)
        else:
            lines += _format_message({key: value}, 0)
    return "\n".join(lines) + "\n"


# --- config.pbtxt parser -------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*) |
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*') |
        (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?) |
        (?P<ident>[A-Za-z_][A-Za-z0-9_.]*) |
        (?P<punct>[:{}\[\],;<>])
    )""",
    re.VERBOSE,
)


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            line = text.count("\n", 0, pos) + 1
            raise GwinferError(f"{where}: cannot parse config at line {line}: {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "comment":
            out.append((kind, m.group(kind)))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], where: str) -> None:
        self.t, self.i, self.where = tokens, 0, where

    def peek(self) -> tuple[str, str] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise GwinferError(f"{self.where}: expected {value or 'a token'!r}, got {tok[1] if tok else 'end of file'!r}")
        self.i += 1
        return tok

    def message(self, close: str | None) -> dict[str, Any]:
        msg: dict[str, Any] = {}
        while True:
            tok = self.peek()
            if tok is None:
                if close is not None:
                    raise GwinferError(f"{self.where}: missing {close!r} at end of file")
                return msg
            if tok[1] == close:
                self.i += 1
                return msg
            if tok[1] in {",", ";"}:
                self.i += 1
                continue
            kind, key = self.take()
            if kind != "ident":
                raise GwinferError(f"{self.where}: expected a field name, got {key!r}")
            if self.peek() and self.peek()[1] == ":":
                self.i += 1
            value = self.value()
            if isinstance(value, list):
                prev = msg.get(key, [])
                msg[key] = (prev if isinstance(prev, list) else [prev]) + value
            elif key in msg or key in REPEATED:
                prev = msg.get(key, [])
                msg[key] = (prev if isinstance(prev, list) else [prev]) + [value]
            else:
                msg[key] = value

    def value(self) -> Any:
        kind, tok = self.take()
        if tok in {"{", "<"}:
            return self.message("}" if tok == "{" else ">")
        if tok == "[":
            items = []
            while self.peek() and self.peek()[1] != "]":
                if self.peek()[1] == ",":
                    self.i += 1
                    continue
                items.append(self.value())
            self.take("]")
            return items
        if kind == "string":
            return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
        if kind == "number":
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        if kind == "ident":
            return {"true": True, "false": False}.get(tok, tok)
        raise GwinferError(f"{self.where}: unexpected {tok!r}")


def _parameters_map(value: Any, where: str) -> dict[str, Any]:
    """The model-level ``parameters`` entries (one dict or a list of {key, value}) as {key: value}."""
    out: dict[str, Any] = {}
    for entry in value if isinstance(value, list) else [value]:
        if not isinstance(entry, dict) or "key" not in entry or set(entry) - {"key", "value"}:
            raise GwinferError(f"{where}: each parameters entry needs a key and a value, got {entry!r}")
        val = entry.get("value", {})
        if not isinstance(val, dict):
            raise GwinferError(f"{where}: parameter {entry['key']!r} needs value {{ string_value: ... }}")
        out[str(entry["key"])] = val
    return out


def parse_config(text: str, where: str = "config.pbtxt") -> dict[str, Any]:
    """Nested dict of a Triton ``config.pbtxt`` (the subset described in the module docstring)."""
    cfg = _Parser(_tokens(text, where), where).message(None)
    if "parameters" in cfg:
        cfg["parameters"] = _parameters_map(cfg["parameters"], where)
    return cfg


def config_parameters(cfg: dict[str, Any]) -> dict[str, str]:
    """``{key: string_value}`` of a config's model-level ``parameters`` (parsed here or Triton's JSON)."""
    params = cfg.get("parameters") or {}
    if not isinstance(params, dict):
        return {}
    return {str(k): str(v.get("string_value", "")) for k, v in params.items() if isinstance(v, dict)}


# --- model configs ----------------------------------------------------------------------------------
def make_config(name: str, platform: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                max_batch_size: int, max_queue_delay_us: int = 2000,
                sequence_idle_us: int | None = None, backend: str | None = None,
                parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The Triton model configuration gwinfer writes (CPU instances, dynamic batching).

    With ``backend`` (``"python"``) the config names that backend instead of ``platform``.
    ``parameters``: free-form model parameters ``{key: string}`` (Triton's ``parameters`` map, reported
    by the model-configuration endpoints of Triton and gwinfer serve).
    """
    if backend is not None and backend not in BACKEND_PLATFORMS:
        raise GwinferError(f"backend {backend!r}; choose one of {sorted(BACKEND_PLATFORMS)}")
    cfg: dict[str, Any] = {
        "name": check_name(name),
        **({"backend": backend} if backend is not None else {"platform": platform}),
        "max_batch_size": int(max_batch_size),
        "input": [t.to_config() for t in inputs],
        "output": [t.to_config() for t in outputs],
    }
    if sequence_idle_us is not None:
        cfg["sequence_batching"] = {"max_sequence_idle_microseconds": int(sequence_idle_us)}
    else:
        cfg["dynamic_batching"] = {"max_queue_delay_microseconds": int(max_queue_delay_us)}
    cfg["instance_group"] = [{"kind": "KIND_CPU", "count": 1}]
    if parameters:
        cfg["parameters"] = {str(k): {"string_value": str(v)} for k, v in parameters.items()}
    return cfg


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Parse and check ``model_dir/config.pbtxt``; one-line error if missing or unusable."""
    p = Path(model_dir) / "config.pbtxt"
    if not p.is_file():
        raise GwinferError(f"{p} does not exist")
    cfg = parse_config(p.read_text(), str(p))
    cfg.setdefault("name", Path(model_dir).name)
    native = cfg.get("platform") in PLATFORM_FILES
    if not native and not ("platform" not in cfg and cfg.get("backend") in BACKEND_PLATFORMS):
        what = f"platform {cfg['platform']!r}" if "platform" in cfg else f"backend {cfg.get('backend')!r}"
        raise GwinferError(f"{p}: {what} is not served; use a platform of {sorted(PLATFORM_FILES)} or a "
                           f"backend of {sorted(BACKEND_PLATFORMS)}")
    if not isinstance(cfg.get("max_batch_size", 0), int) or cfg.get("max_batch_size", 0) < 0:
        raise GwinferError(f"{p}: max_batch_size must be an integer >= 0")
    for key in ("input", "output"):
        if not cfg.get(key):
            raise GwinferError(f"{p}: no {key} tensors")
    return cfg


def runtime_platform(cfg: dict[str, Any]) -> str:
    """The platform whose model file gwinfer runs for a config (``backend: "python"``: onnxruntime_onnx)."""
    return cfg["platform"] if "platform" in cfg else BACKEND_PLATFORMS[cfg["backend"]]


def model_filename(cfg: dict[str, Any]) -> str:
    """The model file gwinfer runs in each version folder (for the Python backend always model.onnx:
    Triton sets ``default_model_filename`` to the Python file there)."""
    platform = runtime_platform(cfg)
    if "platform" not in cfg:
        return PLATFORM_FILES[platform]
    return cfg.get("default_model_filename") or PLATFORM_FILES[platform]


def config_specs(cfg: dict[str, Any], where: str = "config.pbtxt") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs) TensorSpecs of a parsed config."""
    return ([TensorSpec.from_config(e, where) for e in cfg["input"]],
            [TensorSpec.from_config(e, where) for e in cfg["output"]])


def list_versions(model_dir: str | Path) -> list[int]:
    """Sorted integer version folders of a model folder."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def list_models(repo: str | Path) -> list[str]:
    """Names of the model folders (holding a config.pbtxt) of a repository."""
    r = Path(repo)
    if not r.is_dir():
        raise GwinferError(f"model repository {r} does not exist")
    return sorted(p.name for p in r.iterdir() if p.is_dir() and (p / "config.pbtxt").is_file())

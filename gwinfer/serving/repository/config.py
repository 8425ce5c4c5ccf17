"""``config.pbtxt`` read and written through Triton's protobuf ``ModelConfig`` (``inference.ModelConfig``).

The text is parsed by ``google.protobuf.text_format`` into ``tritonclient.grpc.model_config_pb2.ModelConfig``
(so a field Triton does not know, or a value of the wrong type, is refused as Triton would refuse it) and
written back from that message. In between, gwinfer handles configurations as plain dicts with the
protobuf field names (what :func:`parse_config` returns and :func:`format_config` takes, and what the
HTTP ``/config`` endpoint answers):

* fields at their protobuf default are left out, except enum fields, which are always given by name
  (proto3 keeps no presence for scalars, and an enum's zero value such as ``CONTROL_SEQUENCE_START`` is a
  real choice);
* integers are ints (also the 64-bit ones protobuf's JSON mapping writes as strings), repeated fields
  lists, messages dicts;
* the model-level ``parameters`` map is ``{"k": {"string_value": "v"}}`` (the form Triton's
  model-configuration endpoints give); :func:`config_parameters` reads it as ``{"k": "v"}``; gwinfer's
  posterior exports use it for ``parameter_names``.

``version_policy``: :func:`set_version_policy` edits it in the message (``gwinfer promote`` makes it
``specific { versions: [<production>] }``, so a real Triton serves the labelled production version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from tritonclient.grpc.model_config_pb2 import ModelConfig

from gwinfer.errors import GwinferError
from gwinfer.provenance import atomic_path
from gwinfer.serving.repository.layout import BACKEND_PLATFORMS, CONFIG_FILE, check_name, check_served
from gwinfer.serving.repository.specs import TensorSpec

INTEGER_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}


# --- message <-> dict ----------------------------------------------------------------------------
def _value(field: FieldDescriptor, value: Any) -> Any:
    """One (non-repeated) field value as a plain Python value."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if field.type in INTEGER_TYPES:
        return int(value)
    return value


def message_dict(message: Message) -> dict[str, Any]:
    """A protobuf message as a dict of its set fields (and every enum field), by protobuf field name."""
    out: dict[str, Any] = {}
    listed = message.ListFields()
    names = {field.name for field, _ in listed}
    for field in message.DESCRIPTOR.fields:
        if (
            field.type == FieldDescriptor.TYPE_ENUM
            and not field.is_repeated
            and field.name not in names
            and field.containing_oneof is None
        ):
            out[field.name] = _value(field, getattr(message, field.name))
    for field, value in listed:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_value(field, v) for v in value]
        else:
            out[field.name] = _value(field, value)
    return {name: out[name] for name in sorted(out, key=lambda n: message.DESCRIPTOR.fields_by_name[n].number)}


def config_message(cfg: dict[str, Any], where: str = "config") -> ModelConfig:
    """Triton's ModelConfig message of a config dict; one-line GwinferError naming a field it does not fit."""
    try:
        return json_format.ParseDict(cfg, ModelConfig())
    except json_format.ParseError as err:
        raise GwinferError(f"{where} does not fit Triton's ModelConfig: {err}") from None


# --- text ----------------------------------------------------------------------------------------
def parse_message(text: str, where: str = CONFIG_FILE) -> ModelConfig:
    """The ModelConfig message of a ``config.pbtxt`` text; one-line GwinferError if Triton could not read it."""
    try:
        return text_format.Parse(text, ModelConfig())
    except text_format.ParseError as err:
        hint = "each parameters entry needs a key and a value: " if "ParametersEntry" in str(err) else ""
        raise GwinferError(f"{where}: cannot parse config: {hint}{err}") from None


def parse_config(text: str, where: str = CONFIG_FILE) -> dict[str, Any]:
    """The config dict of a ``config.pbtxt`` text; one-line GwinferError if Triton could not read it."""
    return message_dict(parse_message(text, where))


def comment_lines(text: str) -> list[str]:
    """The full-line ``#`` comments of a config.pbtxt text, in order."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")]


def format_message(message: ModelConfig, comments: list[str] | None = None) -> str:
    """Protobuf text format of a ModelConfig (``comments``: lines written first, e.g. kept from an old file)."""
    text = text_format.MessageToString(message, use_short_repeated_primitives=True)
    return "".join(f"{line}\n" for line in comments or []) + text


def format_config(config: dict[str, Any], comments: list[str] | None = None) -> str:
    """Protobuf text format of a config dict (``comments``: see :func:`format_message`)."""
    return format_message(config_message(config), comments)


def read_config(model_dir: str | Path) -> dict[str, Any]:
    """Parse and check ``model_dir/config.pbtxt``; one-line error if missing or unusable."""
    p = Path(model_dir) / CONFIG_FILE
    if not p.is_file():
        raise GwinferError(f"{p} does not exist")
    cfg = parse_config(p.read_text(), str(p))
    cfg.setdefault("name", Path(model_dir).name)
    check_served(cfg, str(p))
    if cfg.get("max_batch_size", 0) < 0:
        raise GwinferError(f"{p}: max_batch_size must be an integer >= 0")
    for key in ("input", "output"):
        if not cfg.get(key):
            raise GwinferError(f"{p}: no {key} tensors")
    return cfg


def write_config(model_dir: str | Path, config: dict[str, Any], comments: list[str] | None = None) -> Path:
    """Write ``model_dir/config.pbtxt`` atomically (temporary file + rename)."""
    p = Path(model_dir) / CONFIG_FILE
    text = format_config(config, comments)
    with atomic_path(p) as tmp:
        tmp.write_text(text)
    return p


def config_parameters(cfg: dict[str, Any]) -> dict[str, str]:
    """``{key: string_value}`` of a config's model-level ``parameters`` (parsed here or Triton's JSON)."""
    params = cfg.get("parameters") or {}
    if not isinstance(params, dict):
        return {}
    return {str(k): str(v.get("string_value", "")) for k, v in params.items() if isinstance(v, dict)}


# --- model configs ------------------------------------------------------------------------------------
def make_config(
    name: str,
    platform: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int,
    max_queue_delay_us: int = 2000,
    sequence_idle_us: int | None = None,
    backend: str | None = None,
    parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Triton model configuration gwinfer writes (CPU instances, dynamic batching).

    ``max_queue_delay_us``: the dynamic batching window (microseconds); with ``sequence_idle_us``
    (microseconds a sequence may stay idle) sequence batching instead. With ``backend`` (``"python"``) the
    config names that backend instead of ``platform``. ``parameters``: free-form model parameters
    ``{key: string}`` (Triton's ``parameters`` map, reported by the model-configuration endpoints).
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


# --- Triton's version_policy --------------------------------------------------------------------------
def version_policy_versions(cfg: dict[str, Any]) -> list[int] | None:
    """The versions of a ``specific`` version_policy (None for other or no policy)."""
    policy = cfg.get("version_policy")
    if not isinstance(policy, dict) or not isinstance(policy.get("specific"), dict):
        return None
    return [int(v) for v in policy["specific"].get("versions", [])]


def with_version_policy(cfg: dict[str, Any], versions: list[int]) -> dict[str, Any]:
    """A copy of config dict ``cfg`` whose version_policy is ``specific { versions: [...] }``."""
    return {**cfg, "version_policy": {"specific": {"versions": [int(v) for v in versions]}}}


def set_version_policy(text: str, versions: list[int]) -> str:
    """``config.pbtxt`` text with its version_policy set to ``specific { versions: [...] }``.

    The text is parsed into the ModelConfig message, the policy set there and the message written back
    (fields in protobuf order). The text format keeps no comments in a message: full-line ``#`` comments
    of ``text`` are kept, in order, at the top of the result; comments after a field on its line are lost.
    """
    message = parse_message(text)
    message.version_policy.specific.versions[:] = [int(v) for v in versions]  # replaces latest/all
    return format_message(message, comment_lines(text))

"""YAML configs into frozen, validated dataclasses (one dataclass per component, no mega-config).

``from_dict(Cls, mapping, where="train")`` builds ``Cls`` refusing unknown keys with a one-line error
naming the accepted ones; nested dataclass fields are built recursively, tuples from lists.
Each dataclass validates its own ranges in ``__post_init__`` and raises :class:`GwinferError`.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gwinfer.errors import GwinferError

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with two YAML 1.2 behaviours a config needs: ``2e-3`` and ``1e-9`` are floats
    (YAML 1.1, PyYAML's default, reads a float without a dot as a string), and a key given twice in one
    mapping is an error (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (:class:`_Loader`), with a one-line error for a missing file or malformed YAML."""
    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"config file {p} does not exist")
    try:
        data = yaml.load(p.read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise GwinferError(f"config file {p} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise GwinferError(f"config file {p} must hold a mapping of settings")
    return data


def looks_like_path(value: Any) -> bool:
    """True for a string that names a file or folder rather than a named preset (``gw5d``,
    ``aLIGOZeroDetHighPower``): it holds a path separator or ends in a file suffix."""
    return isinstance(value, str) and (
        "/" in value or Path(value).suffix in (".txt", ".dat", ".csv", ".prior", ".h5", ".pt")
    )


def resolve_paths(raw: dict[str, Any], base: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``raw`` whose relative paths at the dotted ``keys`` (a string or a list of strings) are
    joined to ``base``, the folder of the config file that holds them; absolute paths and named presets
    are kept. So a config means the same files from any working directory."""
    out = copy.deepcopy(raw)
    for dotted in keys:
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node[leaf]
        fix = lambda v: str(base / v) if looks_like_path(v) and not Path(v).is_absolute() else v  # noqa: E731
        node[leaf] = [fix(v) for v in value] if isinstance(value, list) else fix(value)
    return out


def parse_settings(settings: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.lr=2e-3", "data.limit_train=5000"]`` -> ``{"train": {"lr": 0.002}, "data": {...}}``.

    Keys are dotted paths into the config's sections; values are read as YAML (numbers, lists, strings).
    """
    out: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise GwinferError(f"--set {item!r} must look like section.key=value (e.g. train.lr=2e-3)")
        try:
            parsed = yaml.load(value, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as err:
            raise GwinferError(f"--set {item!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise GwinferError(f"--set {item!r} conflicts with another --set of {part!r}")
        node[parts[-1]] = parsed
    return out


#: Overrides of a sectioned config: ``"section.key=value"`` strings (the command line's ``--set``) or the
#: nested mapping they stand for, ``{section: {key: value}}``.
Settings = Sequence[str] | Mapping[str, Any]


def settings_mapping(settings: Settings | None) -> dict[str, Any]:
    """The nested mapping of ``settings``: strings through :func:`parse_settings`, a mapping deep-copied
    (its keys must be strings); anything else (a bare string too) refused with one line."""
    if settings is None:
        return {}
    if isinstance(settings, Mapping):
        bad = [k for k in settings if not isinstance(k, str) or not k]
        if bad:
            raise GwinferError(f"settings keys must be section names (strings), got {bad!r}")
        return copy.deepcopy(dict(settings))
    if isinstance(settings, (str, bytes)) or not all(isinstance(s, str) for s in settings):
        raise GwinferError(
            "settings must be a list of 'section.key=value' strings or a {section: {key: value}} mapping, "
            f"got {settings!r}"
        )
    return parse_settings(list(settings))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``base`` with ``overrides`` merged in: mappings recursively, anything else (lists too) replaced."""
    out = copy.deepcopy(base)
    for k, v in (overrides or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, refusing unknown keys and wrong types with one line."""
    data = dict(data or {})
    label = where or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise GwinferError(f"{label}: unknown setting(s) {unknown}; accepted: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{label}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise GwinferError(f"{label}: {err}") from None


def _coerce(hint: Any, value: Any, label: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise GwinferError(f"{label} must be a mapping")
        return from_dict(hint, value, label)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GwinferError(f"{label} must be a list")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, label) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, label) if len(args) == 1 else value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GwinferError(f"{label} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GwinferError(f"{label} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise GwinferError(f"{label} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise GwinferError(f"{label} must be a string, got {value!r}")
        return value
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, YAML/JSON-friendly data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(obj)

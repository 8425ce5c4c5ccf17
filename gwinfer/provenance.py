"""Provenance and safe writing: every file gwinfer writes records what made it, and is written atomically.

A provenance record is a JSON-friendly dict::

    {"gwinfer_version": "0.1.0", "kind": "catalogue", "config": {...},
     "parents": [{"path": "...", "sha256": "..."}], "libraries": {"numpy": "2.4.6", ...}}
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from gwinfer._version import __version__
from gwinfer.errors import GwinferError

CORE_LIBRARIES = ("numpy", "scipy", "h5py", "torch", "lalsuite")
#: The errors of a write that ran out of room: disk full, quota exceeded, file size limit (ulimit -f).
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def library_versions(names: tuple[str, ...] = CORE_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones are skipped)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(
    kind: str,
    config: dict[str, Any],
    parents: list[str | Path] | None = None,
    libraries: tuple[str, ...] = CORE_LIBRARIES,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record of a file of type ``kind`` made with ``config`` from ``parents``."""
    rec: dict[str, Any] = {"gwinfer_version": __version__, "kind": kind, "config": config}
    rec["parents"] = [
        {"path": str(p), "sha256": sha256_file(p) if Path(p).is_file() else None} for p in (parents or [])
    ]
    rec["libraries"] = library_versions(libraries)
    rec.update(extra)
    return rec


def check_output(path: str | Path, *, folder: bool) -> Path:
    """``path`` if a ``folder`` (or a file) can be written there; else a one-line GwinferError.

    Called before any work starts, so that a long run never ends in a failed write: a folder wanted where
    a file is (or the reverse), or a destination whose first existing ancestor is not writable.
    """
    p = Path(path)
    if folder and p.exists() and not p.is_dir():
        raise GwinferError(f"{p} is a file; a folder is needed here")
    if not folder and p.is_dir():
        raise GwinferError(f"{p} is a folder; a file path is needed here (e.g. {p / 'result.json'})")
    ancestor = p if (folder and p.exists()) else p.parent  # an existing file is replaced: its folder counts
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise GwinferError(f"cannot write {p}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise GwinferError(f"cannot write {p}: {ancestor} is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    On an exception (or a kill) the destination is untouched and the temporary file is removed; a write
    that runs out of room (:data:`NO_ROOM`: disk full, quota, ``ulimit -f``) is one line.
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as err:
        raise GwinferError(f"cannot write to {dest.parent}: {err.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; finished files get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as err:
        if err.errno not in NO_ROOM:
            raise
        raise GwinferError(
            f"cannot write {dest}: {err.strerror} (nothing was replaced: make room and run the same command again)"
        ) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON file with one-line errors for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise GwinferError(f"{p} does not exist")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise GwinferError(f"{p} is not valid JSON ({err.msg} at line {err.lineno})") from None

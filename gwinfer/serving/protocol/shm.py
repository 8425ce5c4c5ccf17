"""The KServe / Triton *system shared-memory* extension: registered regions of POSIX shared memory.

A client on the same host creates a shared-memory object (``/dev/shm/<key>``, e.g. with
``tritonclient.utils.shared_memory.create_shared_memory_region``), registers a region of it under a
name (``key``, ``offset`` and ``byte_size`` in bytes), and then names the region in an inference
request instead of sending tensor bytes: an input with the parameters ``shared_memory_region``,
``shared_memory_byte_size`` (and optionally ``shared_memory_offset``, bytes from the region's start)
is read from the region (no copy: the model runs on a view of the mapping), and a requested output
with the same parameters is written into it (the response then carries the output's name, datatype,
shape and the region, but no data).

:class:`Regions` is the registry of one server (HTTP and gRPC share it); every mistake is a one-line
:class:`SharedMemoryError` (a ServingError: 400 / INVALID_ARGUMENT) and leaves the registry as it was.
"""

from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gwinfer.serving.protocol.errors import ServingError

SHM_DIR = Path("/dev/shm")
MAX_REGIONS = 1024  # registered regions per server (each holds one mapping)


class SharedMemoryError(ServingError):
    """A shared-memory registration or placement that cannot be honoured (answered with 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


@dataclass
class Region:
    """One registered region: ``byte_size`` bytes at ``offset`` of the shared-memory object ``key``."""

    name: str
    key: str
    offset: int
    byte_size: int
    mapping: mmap.mmap
    writable: bool

    def status(self) -> dict[str, Any]:
        """The region as the extension's status entry: {name, key, offset, byte_size}."""
        return {"name": self.name, "key": self.key, "offset": self.offset, "byte_size": self.byte_size}


@dataclass(frozen=True)
class Placement:
    """Where a request puts one tensor: ``byte_size`` bytes at ``offset`` (bytes) of region ``region``."""

    region: str
    byte_size: int
    offset: int = 0


def checked_int(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SharedMemoryError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def placement(params: dict[str, Any], what: str) -> Placement | None:
    """The shared-memory placement named by a tensor's parameters, or None if it names no region.

    ``what`` names the tensor in errors ("input 'waveform'").
    """
    if "shared_memory_region" not in params:
        for k in ("shared_memory_byte_size", "shared_memory_offset"):
            if k in params:
                raise SharedMemoryError(f"{what}: {k} without shared_memory_region")
        return None
    region = params["shared_memory_region"]
    if not isinstance(region, str) or not region:
        raise SharedMemoryError(f"{what}: shared_memory_region must be a region name, got {region!r}")
    if "shared_memory_byte_size" not in params:
        raise SharedMemoryError(f"{what}: shared_memory_region {region!r} needs shared_memory_byte_size")
    size = checked_int(params["shared_memory_byte_size"], f"{what}: shared_memory_byte_size", 0)
    offset = checked_int(params.get("shared_memory_offset", 0), f"{what}: shared_memory_offset", 0)
    return Placement(region, size, offset)


def key_path(key: Any) -> Path:
    """``/dev/shm/<key>`` of a POSIX shared-memory key ("/name" or "name"; no other "/")."""
    if not isinstance(key, str) or not key.lstrip("/") or "\0" in key:
        raise SharedMemoryError(f"shared-memory key must be a non-empty string, got {key!r}")
    name = key[1:] if key.startswith("/") else key
    if "/" in name or name in (".", ".."):
        raise SharedMemoryError(f"shared-memory key {key!r} must be one name (like '/input0'), not a path")
    return SHM_DIR / name


class Regions:
    """The registered system shared-memory regions of one server (thread-safe)."""

    def __init__(self) -> None:
        self._regions: dict[str, Region] = {}
        self._lock = threading.Lock()

    def register(self, name: Any, key: Any, offset: Any = 0, byte_size: Any = None) -> Region:
        """Map ``byte_size`` bytes at ``offset`` of ``/dev/shm/<key>`` as region ``name``.

        Refused (SharedMemoryError): a name already registered, a key with no object, a region beyond
        the object's size, non-integer or negative sizes.
        """
        if not isinstance(name, str) or not name:
            raise SharedMemoryError(f"shared-memory region name must be a non-empty string, got {name!r}")
        offset = checked_int(offset, f"region {name!r}: offset", 0)
        byte_size = checked_int(byte_size, f"region {name!r}: byte_size", 1)
        path = key_path(key)
        with self._lock:
            if name in self._regions:
                raise SharedMemoryError(f"shared-memory region {name!r} is already registered; unregister it first")
            if len(self._regions) >= MAX_REGIONS:
                raise SharedMemoryError(f"already {MAX_REGIONS} shared-memory regions registered; unregister some")
            writable = True
            try:
                fd = os.open(path, os.O_RDWR)
            except PermissionError:
                writable = False
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError as err:
                    raise SharedMemoryError(f"cannot open shared-memory key {key!r} ({path}): {err.strerror}") from None
            except FileNotFoundError:
                raise SharedMemoryError(f"no shared-memory object with key {key!r} ({path} does not exist)") from None
            except OSError as err:
                raise SharedMemoryError(f"cannot open shared-memory key {key!r} ({path}): {err.strerror}") from None
            try:
                size = os.fstat(fd).st_size
                if offset + byte_size > size:
                    raise SharedMemoryError(
                        f"region {name!r}: offset {offset} + byte_size {byte_size} exceeds the "
                        f"{size} bytes of shared-memory key {key!r}"
                    )
                mapping = mmap.mmap(
                    fd, offset + byte_size, mmap.MAP_SHARED, mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
                )
            except OSError as err:
                raise SharedMemoryError(f"cannot map shared-memory key {key!r}: {err.strerror or err}") from None
            finally:
                os.close(fd)
            region = Region(name, key, offset, byte_size, mapping, writable)
            self._regions[name] = region
        return region

    def unregister(self, name: str | None = None) -> None:
        """Forget region ``name`` (None or "": all). An unknown name is not an error (Triton's answer).

        The mapping is released once no in-flight request still views it.
        """
        with self._lock:
            if name:
                self._regions.pop(name, None)
            else:
                self._regions.clear()

    def status(self, name: str | None = None) -> list[dict[str, Any]]:
        """[{name, key, offset, byte_size}] of region ``name`` (None or "": all of them)."""
        with self._lock:
            if name:
                return [self.get(name).status()]
            return [r.status() for _, r in sorted(self._regions.items())]

    def get(self, name: str) -> Region:
        """The registered region ``name`` (SharedMemoryError if there is none)."""
        region = self._regions.get(name)
        if region is None:
            known = sorted(self._regions)
            raise SharedMemoryError(f"unknown shared-memory region {name!r}; registered: {known[:20]}")
        return region

    def __len__(self) -> int:
        return len(self._regions)

    def span(self, where: Placement, what: str) -> Region:
        """The region of ``where``, checked to hold its ``offset + byte_size`` bytes."""
        region = self.get(where.region)
        if where.offset + where.byte_size > region.byte_size:
            raise SharedMemoryError(
                f"{what}: shared_memory_offset {where.offset} + shared_memory_byte_size "
                f"{where.byte_size} exceeds region {where.region!r} of {region.byte_size} bytes"
            )
        return region

    def read(self, where: Placement, dtype: np.dtype, shape: list[int], what: str) -> np.ndarray:
        """A read-only view (no copy) of a tensor of ``dtype`` and ``shape`` placed at ``where``.

        ``shared_memory_byte_size`` must be exactly the tensor's size in bytes.
        """
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        need = count * dtype.itemsize
        if where.byte_size != need:
            raise SharedMemoryError(
                f"{what}: shared_memory_byte_size {where.byte_size} != {count} x "
                f"{dtype.itemsize} = {need} bytes for shape {list(shape)}"
            )
        region = self.span(where, what)
        arr = np.frombuffer(
            region.mapping, dtype=dtype.newbyteorder("<"), count=count, offset=region.offset + where.offset
        ).reshape(shape)
        if not arr.dtype.isnative:  # big-endian hosts only
            arr = arr.astype(dtype)
        arr.flags.writeable = False  # the client's memory: runners must not modify it
        return arr

    def check_room(self, where: Placement, nbytes: int | None, what: str) -> None:
        """SharedMemoryError unless ``where`` is inside a writable region and holds ``nbytes`` bytes
        (None: not known before the model runs)."""
        region = self.span(where, what)
        if not region.writable:
            raise SharedMemoryError(f"{what}: region {where.region!r} is read-only for this server")
        if nbytes is not None and where.byte_size < nbytes:
            raise SharedMemoryError(
                f"{what}: shared_memory_byte_size {where.byte_size} is smaller than the {nbytes} bytes of the output"
            )

    def write(self, where: Placement, arr: np.ndarray, what: str) -> int:
        """Write ``arr`` (little-endian, C order) at ``where``; returns the bytes written."""
        data = np.ascontiguousarray(arr)
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)
        self.check_room(where, data.nbytes, what)
        region = self.get(where.region)
        start = region.offset + where.offset
        dest = np.frombuffer(region.mapping, dtype=np.uint8, count=data.nbytes, offset=start)
        dest[:] = data.reshape(-1).view(np.uint8)
        return data.nbytes


def is_shared(arr: np.ndarray) -> bool:
    """True if ``arr`` views a shared-memory mapping (the client may overwrite it after the response)."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, mmap.mmap)

"""A thin client over ``tritonclient.http`` that learns a model's tensors from the server's metadata.

    model = ServedModel("127.0.0.1:8000", "rb-small")
    theta = model(x)                       # x float32 (batch, 2, T) -> (batch, 3)
    out = model.infer({"waveform": x})     # all outputs by name

Nothing is hand-written: input/output names, shapes and datatypes come from
``GET /v2/models/<name>``. Works against the gwinfer server and a real Triton server alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gwinfer.errors import GwinferError


class ServedModel:
    """A model served over KServe v2 HTTP, called like a function on numpy arrays (binary tensors)."""

    def __init__(self, url: str, name: str, version: str = "", token: str | None = None,
                 binary: bool = True, timeout: float = 60.0) -> None:
        import tritonclient.http as httpclient
        from tritonclient.utils import InferenceServerException, triton_to_np_dtype

        self._http, self._exc, self._np_dtype = httpclient, InferenceServerException, triton_to_np_dtype
        url = url.split("://", 1)[-1].rstrip("/")
        self.url, self.name, self.version, self.binary = url, name, str(version or ""), binary
        self.headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = httpclient.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
        try:
            meta = self.client.get_model_metadata(name, self.version, headers=self.headers)
        except InferenceServerException as err:
            raise GwinferError(f"cannot read metadata of model {name!r} from {url}: {err.message()}") from None
        except Exception as err:  # noqa: BLE001 (connection errors come in many types)
            raise GwinferError(f"cannot reach {url}: {type(err).__name__}: {err}") from None
        self.metadata = meta
        self.inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["inputs"]}
        self.outputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in meta["outputs"]}

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _input(self, name: str, value: Any) -> Any:
        datatype, shape = self.inputs[name]
        arr = np.ascontiguousarray(value, dtype=self._np_dtype(datatype))
        if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
            raise GwinferError(f"input {name!r} has shape {arr.shape}; the server expects {shape} (-1: any)")
        t = self._http.InferInput(name, list(arr.shape), datatype)
        t.set_data_from_numpy(arr, binary_data=self.binary)
        return t

    def infer(self, inputs: dict[str, Any], *, sequence_id: int | str = 0, sequence_start: bool = False,
              sequence_end: bool = False) -> dict[str, np.ndarray]:
        """All outputs {name: array} for inputs {name: array} (names as in the server's metadata)."""
        unknown, missing = set(inputs) - set(self.inputs), set(self.inputs) - set(inputs)
        if unknown or missing:
            raise GwinferError(f"model {self.name!r} takes inputs {sorted(self.inputs)}; got {sorted(inputs)}")
        tensors = [self._input(n, inputs[n]) for n in self.inputs]
        outs = [self._http.InferRequestedOutput(n, binary_data=self.binary) for n in self.outputs]
        try:
            res = self.client.infer(self.name, tensors, model_version=self.version, outputs=outs,
                                    headers=self.headers, sequence_id=sequence_id,
                                    sequence_start=sequence_start, sequence_end=sequence_end)
        except self._exc as err:
            raise GwinferError(f"inference on {self.name!r} failed: {err.message()}") from None
        return {n: res.as_numpy(n) for n in self.outputs}

    def __call__(self, x: Any, **sequence: Any) -> np.ndarray:
        """The first output of the model on its single input ``x``."""
        if len(self.inputs) != 1:
            raise GwinferError(f"model {self.name!r} has {len(self.inputs)} inputs; use infer({{name: array}})")
        out = self.infer({next(iter(self.inputs)): x}, **sequence)
        return out[next(iter(self.outputs))]

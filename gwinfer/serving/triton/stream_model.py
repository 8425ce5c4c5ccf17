"""Triton Python-backend model of a gwinfer *streaming* entry: per-sequence snapshot + the ONNX graph.

``gwinfer export --stream-stride S --backend python`` copies this file verbatim to
``REPO/<name>/<version>/model.py`` next to ``model.onnx`` and ``gwinfer.json``. It must not import gwinfer
(it runs in Triton's Python-backend stub, whose interpreter needs only ``numpy`` and ``onnxruntime``).

Why control inputs and not Triton's implicit state: Triton 2.51's Python backend accepts a
``sequence_batching { state [...] }`` configuration, but it never stores the state output -- every
request sees the ``initial_state`` again (tried on the real binary: an accumulator returned x instead of
the running sum; the backend has no TRITONBACKEND_State* calls). So the configuration asks the sequence
batcher for the control tensors instead::

    sequence_batching {
      max_sequence_idle_microseconds: ...
      oldest { max_candidate_sequences: ... }          # many live sequences share the one instance
      control_input [ START (CONTROL_SEQUENCE_START), END (CONTROL_SEQUENCE_END),
                      CORRID (CONTROL_SEQUENCE_CORRID, TYPE_UINT64) ]
    }

and this model keeps the snapshot of each correlation id itself (a dict, as gwinfer's ``SequenceStore``):
START creates/resets it, END drops it after the request, a request for an id that is not live is an
error response, ids idle for longer than ``max_sequence_idle_microseconds`` are dropped, and a failing
request leaves the state unchanged. The snapshot update is gwinfer's pure ``snapshotter`` (state in,
state out; :func:`snapshot_state` / :func:`snapshotter` below are a numpy-only copy of
``gwinfer.serving.runtime.sequences``, checked against it by the tests).

What the entry computes is read from ``<version>/gwinfer.json`` (``streaming``: ``kernel``, ``stride``,
``channels``, ``state_input``, ``graph_input``, ``graph_outputs``, ``ready_output``): the state input
(``update`` (1, channels, stride)) goes through the snapshotter, the window is fed to the graph as
``graph_input`` together with every other request input unchanged (a posterior's ``noise``), and the
graph outputs come back under the configuration's output names plus ``ready`` (1, 1) BOOL (False while
the window still holds initial zeros). Requests of one batch are run one by one (``max_batch_size: 1``).
"""

import json
import os
import time

import numpy as np

try:  # present inside Triton's stub; absent when the tests import the pure functions
    import triton_python_backend_utils as pb_utils
except ImportError:  # pragma: no cover
    pb_utils = None


# --- gwinfer.serving.runtime.sequences.snapshotter, numpy only -----------------------------------
def snapshot_state(channels, kernel, stride, dtype=np.float32):
    """Initial state: (buffer zeros (channels, kernel - stride), filled = 0 real samples so far)."""
    if not (1 <= stride <= kernel):
        raise ValueError(f"stride = {stride} must be in [1, kernel = {kernel}]")
    return np.zeros((channels, kernel - stride), dtype=dtype), 0


def snapshotter(update, state, kernel, stride):
    """(window (channels, kernel), new state, ready) from ``stride`` new samples ``update`` (channels, stride)."""
    buffer, filled = state
    expected = (buffer.shape[0], stride)
    if tuple(update.shape) != expected:
        raise ValueError(
            f"stream update has shape {tuple(update.shape)}; expected {expected} (channels x stride new samples)"
        )
    window = np.concatenate([buffer, np.asarray(update, dtype=buffer.dtype)], axis=-1)
    filled = min(filled + stride, kernel)
    return window, (window[:, stride:], filled), filled >= kernel


class TritonPythonModel:
    """One instance: an onnxruntime session over ``<version>/model.onnx`` and the live sequences' snapshots."""

    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        self.name = config.get("name", "model")
        vdir = os.path.join(args["model_repository"], str(args["model_version"]))
        with open(os.path.join(vdir, "gwinfer.json")) as f:
            spec = json.load(f)["streaming"]
        self.kernel, self.stride = int(spec["kernel"]), int(spec["stride"])
        self.channels = int(spec["channels"])
        self.state_input = spec["state_input"]
        self.graph_input = spec["graph_input"]
        self.graph_outputs = list(spec["graph_outputs"])
        self.ready_output = spec["ready_output"]
        self.inputs = [(t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["input"]]
        self.outputs = [t["name"] for t in config["output"] if t["name"] != self.ready_output]
        seq = config.get("sequence_batching") or {}
        self.idle_s = int(seq.get("max_sequence_idle_microseconds", 60_000_000)) / 1e6
        self.controls = {c["control"][0]["kind"]: c["name"] for c in seq.get("control_input", [])}
        for kind in ("CONTROL_SEQUENCE_START", "CONTROL_SEQUENCE_END", "CONTROL_SEQUENCE_CORRID"):
            if kind not in self.controls:
                raise pb_utils.TritonModelException(f"{self.name}: sequence_batching needs a {kind} control input")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(os.path.join(vdir, "model.onnx"), opts, providers=["CPUExecutionProvider"])
        self.states = {}  # correlation id -> ((buffer, filled), last use, monotonic s)

    def _control(self, request, kind):
        t = pb_utils.get_input_tensor_by_name(request, self.controls[kind])
        return None if t is None else t.as_numpy().reshape(-1)[0]

    def _expire(self, now):
        for key in [k for k, (_, t) in self.states.items() if now - t > self.idle_s]:
            del self.states[key]

    def _one(self, request, now):
        start = bool(self._control(request, "CONTROL_SEQUENCE_START"))
        end = bool(self._control(request, "CONTROL_SEQUENCE_END"))
        corrid = int(self._control(request, "CONTROL_SEQUENCE_CORRID"))
        if start:
            state = snapshot_state(self.channels, self.kernel, self.stride)
        elif corrid in self.states:
            state = self.states[corrid][0]
        else:
            raise ValueError(
                f"sequence {corrid} is not live: start it with sequence_start "
                f"(idle sequences expire after {self.idle_s:g} s)"
            )
        feed = {}
        for name, dtype in self.inputs:
            t = pb_utils.get_input_tensor_by_name(request, name)
            if t is None:
                raise ValueError(f"missing input {name!r}")
            feed[name] = t.as_numpy().astype(dtype, copy=False)
        update = feed.pop(self.state_input)
        if update.shape[0] != 1 or any(v.shape[0] != 1 for v in feed.values()):
            raise ValueError("streaming requests carry one sequence (batch 1)")
        window, new, ready = snapshotter(update[0], state, self.kernel, self.stride)
        feed[self.graph_input] = np.ascontiguousarray(window[None], dtype=np.float32)
        results = self.session.run(self.graph_outputs, feed)
        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(r)) for n, r in zip(self.outputs, results)]
        tensors.append(pb_utils.Tensor(self.ready_output, np.array([[ready]], dtype=bool)))
        if end:
            self.states.pop(corrid, None)
        else:
            self.states[corrid] = (new, now)  # only a successful request changes the state
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests):
        now = time.monotonic()
        self._expire(now)
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request, now))
            except Exception as err:  # noqa: BLE001 (one bad request must not fail the others)
                msg = " ".join(str(err).split()) or type(err).__name__
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{self.name}: {msg}")))
        return responses

    def finalize(self):
        self.states.clear()

"""Triton Python-backend model that runs its version's ONNX graph with onnxruntime.

``gwinfer export --backend python`` copies this file verbatim to ``REPO/<name>/<version>/model.py``
next to ``model.onnx``; the config.pbtxt then says ``backend: "python"`` instead of
``platform: "onnxruntime_onnx"``. It is for Triton builds without the onnxruntime backend (the
``tritonserver`` bundled in ``nvidia-pytriton`` has only the Python backend); Triton's GPU containers
have the native backend, which is faster (no Python in the request path) -- use the default export there.

Runs inside Triton's Python-backend stub, whose interpreter needs ``numpy`` and ``onnxruntime`` (or
``onnxruntime-gpu``). It must not import gwinfer. Everything model-specific is read at ``initialize``:

* input/output names and data types from the model configuration (``args["model_config"]``);
* the graph file is always ``<version>/model.onnx`` (the configuration's ``default_model_filename``
  names this Python file for the Python backend);
* optional ``parameters { key: "intra_op_thread_count" value: { string_value: "N" } }`` (default 1;
  ``inter_op_thread_count`` likewise), the names of the onnxruntime backend's parameters;
* GPU instances (``instance_group [{ kind: KIND_GPU }]``) use the CUDA execution provider on the
  instance's device when onnxruntime has it, else the CPU.

``execute`` gets the requests Triton's dynamic batcher collected: for a model with ``max_batch_size > 0``
all well-formed requests are concatenated along the batch axis, run in one ``session.run`` and the
outputs split back per request. A request that is malformed (missing input, wrong per-item shape) gets
an error response of its own; the others are answered normally.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _param(config, key, default):
    entry = (config.get("parameters") or {}).get(key)
    value = entry.get("string_value") if isinstance(entry, dict) else None
    return int(value) if value not in (None, "") else default


class TritonPythonModel:
    """One model instance: an onnxruntime session over ``<version>/model.onnx``."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.name = config.get("name", "model")
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [
            (t["name"], pb_utils.triton_string_to_numpy(t["data_type"]), [int(d) for d in t.get("dims", [])])
            for t in config["input"]
        ]
        self.outputs = [(t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["output"]]
        path = os.path.join(args["model_repository"], str(args["model_version"]), "model.onnx")
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"{self.name}: {path} does not exist")

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = _param(config, "intra_op_thread_count", 1)
        opts.inter_op_num_threads = _param(config, "inter_op_thread_count", 1)
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            device = int(args.get("model_instance_device_id", 0))
            providers = [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, opts, providers=providers)

        graph_in = sorted(i.name for i in self.session.get_inputs())
        graph_out = {o.name for o in self.session.get_outputs()}
        names_in = sorted(name for name, _, _ in self.inputs)
        names_out = [name for name, _ in self.outputs]
        if graph_in != names_in or not set(names_out) <= graph_out:
            raise pb_utils.TritonModelException(
                f"{self.name}: graph tensors {graph_in} -> {sorted(graph_out)} do not match the config "
                f"{names_in} -> {names_out}"
            )

    def _feed(self, request):
        """The request's inputs as {name: array}, checked against the config (ValueError if not)."""
        feed = {}
        for name, dtype, dims in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"{self.name}: input {name!r} is missing")
            array = np.asarray(tensor.as_numpy())
            shape = list(array.shape[1:] if self.batching else array.shape)
            if len(shape) != len(dims) or any(d != -1 and d != s for d, s in zip(dims, shape)):
                raise ValueError(
                    f"{self.name}: input {name!r} has shape {list(array.shape)}; "
                    f"expected {(['-1'] if self.batching else []) + dims}"
                )
            feed[name] = np.ascontiguousarray(array, dtype=dtype)
        return feed

    def _run(self, feed):
        names = [name for name, _ in self.outputs]
        return {
            name: np.ascontiguousarray(out, dtype=dtype)
            for (name, dtype), out in zip(self.outputs, self.session.run(names, feed))
        }

    @staticmethod
    def _response(outputs):
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, array) for name, array in outputs.items()]
        )

    @staticmethod
    def _error(err):
        message = " ".join(str(err).split()) or type(err).__name__
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))

    def execute(self, requests):
        responses = [None] * len(requests)
        feeds = {}
        for i, request in enumerate(requests):
            try:
                feeds[i] = self._feed(request)
            except Exception as err:  # noqa: BLE001 (one bad request must not fail the others)
                responses[i] = self._error(err)
        if self.batching and len(feeds) > 1:
            order = list(feeds)
            sizes = [len(next(iter(feeds[i].values()))) for i in order]
            try:
                joint = self._run({name: np.concatenate([feeds[i][name] for i in order]) for name, _, _ in self.inputs})
                bounds = np.cumsum(sizes)[:-1]
                parts = {name: np.split(out, bounds) for name, out in joint.items()}
                for k, i in enumerate(order):
                    responses[i] = self._response({name: parts[name][k] for name in parts})
            except Exception as err:  # noqa: BLE001
                for i in order:
                    responses[i] = self._error(err)
        else:
            for i, feed in feeds.items():
                try:
                    responses[i] = self._response(self._run(feed))
                except Exception as err:  # noqa: BLE001
                    responses[i] = self._error(err)
        return responses

    def finalize(self):
        self.session = None

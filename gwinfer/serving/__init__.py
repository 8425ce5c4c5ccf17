"""Serving: export to a Triton model repository, a KServe v2 server, streaming state, clients.

Sub-packages and modules, from the bottom up (each imports only those above it in this list):

* :mod:`~gwinfer.serving.repository` – repository layout, ``config.pbtxt`` through Triton's protobuf
  ``ModelConfig``, tensor specs, ``labels.json`` (production / development versions)
* :mod:`~gwinfer.serving.triton` – the real ``tritonserver`` launcher (``TritonServer(repo)``) and the
  Python-backend ``model.py`` files gwinfer exports
* :mod:`~gwinfer.serving.export` – ``export_model(model_path, repo)``: point estimators and posterior
  estimators (one sampling graph: strain, noise -> samples, log_prob) as ONNX or TorchScript
* :mod:`~gwinfer.serving.runtime` – runners, loaded versions, dynamic batching, streaming sequences
* :mod:`~gwinfer.serving.protocol` – KServe v2 request parsing / response encoding (HTTP and gRPC forms),
  ``ServingError`` and the status mapping, the system shared-memory extension
* :mod:`~gwinfer.serving.server` – ``gwinfer serve``: ``Server(repo).start()`` / ``serve(repo)`` (FastAPI +
  uvicorn, grpc.aio), metrics, shadow monitoring of a development version
* :mod:`~gwinfer.serving.promotion` – ``promote(repo, name, v)`` (``gwinfer promote``)
* :mod:`~gwinfer.serving.client` – ``ServedModel(url, name)`` over ``tritonclient.http``, ``sample_posterior``,
  ``AsyncServedModel`` (``tritonclient.http.aio``)
* :mod:`~gwinfer.serving.replay` – ``stream_strain``: strain files replayed through a streaming posterior entry

Nothing is imported here: submodules are imported on use (the server needs fastapi/uvicorn, grpcio and
tritonclient; the client tritonclient; export torch and onnx). See docs/serving.md.
"""

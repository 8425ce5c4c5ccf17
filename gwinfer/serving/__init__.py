"""Serving: export to a Triton-style repository, a KServe v2 HTTP server, streaming state, a client.

* :mod:`~gwinfer.serving.export` – ``export_model(model_path, repo, fmt="onnx"|"torchscript")``
* :mod:`~gwinfer.serving.posterior_export` – posterior estimators as one graph (strain, noise -> samples, log_prob)
* :mod:`~gwinfer.serving.repository` – layout, ``config.pbtxt`` writer/parser, tensor specs
* :mod:`~gwinfer.serving.server` – ``Server(repo).start()`` / ``serve(repo)`` (FastAPI + uvicorn)
* :mod:`~gwinfer.serving.grpc_server` – the KServe v2 gRPC service (grpc.aio, tritonclient's protobufs)
* :mod:`~gwinfer.serving.promotion` – ``labels.json`` (production/development versions), ``promote(repo, name, v)``
* :mod:`~gwinfer.serving.shadow` – ``ShadowMonitor``: production requests mirrored to the development version
* :mod:`~gwinfer.serving.streaming` – ``snapshotter``, ``online_average``, ``SequenceStore``
* :mod:`~gwinfer.serving.client` – ``ServedModel(url, name)`` over ``tritonclient.http``, ``sample_posterior``,
  ``AsyncServedModel`` (``tritonclient.http.aio``)
* :mod:`~gwinfer.serving.pipeline` – ``stream_strain``: strain files replayed through a streaming posterior entry
* :mod:`~gwinfer.serving.shm` – the system shared-memory extension (regions registered by clients)
* :mod:`~gwinfer.serving.triton` – find/start/stop a real ``tritonserver`` (``TritonServer(repo)``)
* :mod:`~gwinfer.serving.triton_python_model` – the Triton Python-backend ``model.py`` of ``backend="python"``
* :mod:`~gwinfer.serving.triton_stream_model` – the ``model.py`` of python-backend streaming entries (sequence batching)

Submodules are imported on use (the server needs fastapi/uvicorn, gRPC grpcio and tritonclient, the client tritonclient).
See docs/serving.md.
"""

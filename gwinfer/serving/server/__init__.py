"""``gwinfer serve``: a KServe v2 HTTP and gRPC server for a Triton-style model repository.

* :mod:`.run` – :class:`~.run.Server` (background thread) and :func:`~.run.serve` (foreground)
* :mod:`.options` – :class:`~.options.ServerOptions`: every option (default, unit, help, range), checked once
* :mod:`.app` – :class:`~.app.App`: loaded versions, labels, routing, inference, the repository "load"
* :mod:`.http` – the FastAPI routes; :mod:`.middleware` (token, errors, counting); :mod:`.body` (bodies)
* :mod:`.grpc` – the ``inference.GRPCInferenceService`` (grpc.aio, tritonclient's protobufs)
* :mod:`.metrics` – ``GET /metrics`` (Triton's ``nv_inference_*`` counters and ``gwinfer_*`` extras)
* :mod:`.shadow` – :class:`~.shadow.ShadowMonitor`: production requests mirrored to the development version

The real NVIDIA Triton server is the documented production server (docs/serving.md, "When to use which").
"""

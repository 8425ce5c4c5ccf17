"""The KServe v2 / Open Inference Protocol: request parsing and response encoding, independent of servers.

* :mod:`.errors` – :class:`~.errors.ServingError` (a GwinferError with its HTTP status) and the one mapping
  of any exception to an HTTP status and a gRPC status code
* :mod:`.tensors` – checks shared by both protocols (input names/datatypes/shapes, requested outputs,
  shared-memory placements)
* :mod:`.http_codec` – the HTTP/REST form: JSON inference header, binary tensor extension
* :mod:`.grpc_codec` – the gRPC form: ``ModelInferRequest`` / ``ModelInferResponse`` (tritonclient's protobufs)
* :mod:`.shm` – the system shared-memory extension: registered regions, tensor placements
"""

"""The Triton model repository: folder layout, ``config.pbtxt``, tensor specs and version labels.

* :mod:`.layout` – model names, version folders, platforms/backends and their model files
* :mod:`.specs` – :class:`~.specs.TensorSpec` (name, KServe v2 datatype, dims) and the datatype tables
* :mod:`.config` – ``config.pbtxt`` read/written through Triton's protobuf ``ModelConfig``, ``version_policy``
* :mod:`.labels` – ``labels.json``: the production and development versions of a model

Nothing here imports a web framework or a model runtime.
"""

"""Export of gwinfer estimators into a Triton-style model repository (ONNX or TorchScript).

* :mod:`.model` – :func:`~.model.export_model`: a point or posterior estimator file -> ``REPO/<name>/<version>``
* :mod:`.point` – point estimators (``waveform`` -> ``theta``) and their check against torch
* :mod:`.posterior` – posterior estimators as one sampling graph (strain, noise -> samples, log_prob)
* :mod:`.prior` – a posterior's training prior beside its graph (``prior.prior``, gwinfer.json, config parameters)
* :mod:`.graph` – writing ONNX / TorchScript graphs and running exported files
* :mod:`.entry` – repository entries: streaming entries, Triton's sequence controls, installing a version
"""

"""Running exported models, independent of any protocol or web framework.

* :mod:`.runners` – ONNX (onnxruntime) and TorchScript runners: ``runner({name: array}) -> {name: array}``
* :mod:`.versions` – :class:`~.versions.ModelVersion`: one loaded version folder; loading a repository
* :mod:`.prior` – a posterior version's draws made to lie inside its training prior (reject and replace)
* :mod:`.batching` – :class:`~.batching.Batcher`: dynamic batching of concurrent requests (asyncio)
* :mod:`.sequences` – streaming state: ``snapshotter``, ``online_average``, :class:`~.sequences.SequenceStore`
"""

"""Posterior estimators q(theta | x): Gaussian, zuko MAF/NSF/IAF, CVAE and CVAE+, on the common
:class:`~gwinfer.models.posterior.base.PosteriorEstimator`, with ResNet-1D, SVD or MLP embeddings."""

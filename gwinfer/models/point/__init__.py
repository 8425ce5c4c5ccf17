"""Point estimators of (q, s1z, s2z) from h22: the paper's WaveNet (root + leaves) and gwinfer's
reduced-basis MLP, on the common :class:`~gwinfer.models.point.base.PointEstimator` with its heads."""

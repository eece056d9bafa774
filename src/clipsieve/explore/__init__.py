"""The threshold explorer: choose filter thresholds by looking (``clipsieve explore``)."""

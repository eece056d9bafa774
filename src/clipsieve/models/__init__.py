"""Models in one place: the registry that finds weights offline (``registry.py``) and the image
and text encoders the scorers, caption frames, dedup and evaluation share (``encoders.py``)."""

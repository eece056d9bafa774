"""The classify pass: a VLM says what kind of footage each clip is (``clipsieve classify``).

It asks through the caption backends, frames and transport (``caption/``): the same retries,
server pools, Ray workers, answer parts saved as they arrive, and each row asked exactly once.
"""

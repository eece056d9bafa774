"""Helpers for tests, benchmarks and plugin authors; never imported by the runtime package.

``randominit`` writes tiny randomly initialised checkpoints in the layouts of the hub models
clipsieve loads, so their real loading code runs without a download.
"""

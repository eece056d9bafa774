"""clipsieve: raw video in, a curated, captioned text-to-video training set out."""

__version__ = "0.1.0"

"""Which metafile format a file is, from its extension and first bytes."""

from __future__ import annotations

import re
from pathlib import Path

from clipsieve.ingest.metafiles import parse
from clipsieve.ingest.metafiles.model import FORMATS, MetafileError


def sniff_format(path: Path) -> str:
    """The format of ``path`` from its extension and its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError as exc:
        raise MetafileError(f"cannot read metafile {path}: {exc.strerror or exc}") from None
    text = head.decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    suffix = path.suffix.lower()
    if suffix == ".vtt" or text.startswith("WEBVTT"):
        return "vtt"
    if suffix == ".json" or text[:1] in "[{":
        if text.startswith("["):
            return "msrvtt"
        if text.startswith("{"):
            return "hdvg"
        raise MetafileError(f"{path}: unknown JSON layout; pass --format ({', '.join(FORMATS)})")
    if suffix in (".csv", ".tsv") or (
        "," in text.split("\n", 1)[0] and not parse.looks_like_url(text)
    ):
        first = text.split("\n", 1)[0]
        header = {c.strip().strip('"') for c in re.split(r"[,\t]", first)}
        if "timestamp" in header or "videoID" in header:
            return "panda70m"
        if "contentUrl" in header or ({"videoid", "name"} <= header):
            return "webvid"
        if "path" in header or ({"video", "caption"} <= header):
            return "opensora"
        raise MetafileError(
            f"{path}: unknown csv columns ({', '.join(sorted(header))[:120]}); "
            f"pass --format ({', '.join(FORMATS)})"
        )
    return "urls"

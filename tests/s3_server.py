"""A local S3 stand-in (moto's server on 127.0.0.1) for the URL run folder tests.

The server runs in a thread of the test process; the ``AWS_*`` variables point every S3 client
at it (boto, s3fs, and the pool or Ray workers started afterwards, which inherit them), so
nothing ever leaves loopback.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class LocalS3:
    endpoint: str
    bucket: str

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def filesystem(self):  # -> s3fs.S3FileSystem
        import s3fs

        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.endpoint})
        fs.invalidate_cache()
        return fs

    def keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` (relative to it), sorted."""
        fs = self.filesystem()
        root = f"{self.bucket}/{prefix}".rstrip("/")
        return sorted(p[len(root) + 1 :] for p in fs.find(root))


ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextlib.contextmanager
def local_s3(bucket: str = "clipsieve-test") -> Iterator[LocalS3]:
    """Start the server, point the ``AWS_*`` variables at it, make ``bucket``; undo on exit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
    import s3fs

    # fsspec reuses filesystem instances: one made for an earlier server keeps its endpoint
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        s3 = LocalS3(endpoint, bucket)
        fs = s3.filesystem()
        # moto keeps one in-memory store per process: a bucket an earlier test made is still
        # there (and may hold its objects), so start from an empty one
        if fs.exists(bucket):
            fs.rm(bucket, recursive=True)
        fs.invalidate_cache()
        if not fs.exists(bucket):
            fs.mkdir(bucket)
        yield s3
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()

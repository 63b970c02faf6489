"""Fixtures of the archival tests: a moto S3 server on loopback, and the shared two-video corpus archived
once per test module (the Ray cluster fixture is in tests/conftest.py)."""

from __future__ import annotations

import logging
import os

import pytest

from tests.distributed.archived import archive_corpus, make_corpus

S3_KEY = S3_SECRET = "testing"


class MotoS3:
    def __init__(self, endpoint: str):
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                                   aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def options(self, key: str = S3_KEY, secret: str = S3_SECRET) -> dict:
        """fsspec/s3fs storage options for this server (s3fs takes endpoint_url at the top level)."""
        return {"endpoint_url": self.endpoint, "key": key, "secret": secret}

    def require_credentials(self, on: bool) -> None:
        """Make moto check credentials (every key is unknown to it then) or stop checking."""
        import urllib.request

        body = b"0" if on else b"inf"
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture(scope="session")
def moto_s3():
    """moto in server mode on 127.0.0.1 (a free port): reachable from Ray worker processes too."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET, AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoS3(f"http://{host}:{port}")
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The shared corpus (tests.distributed.archived.make_corpus)."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def archived(ray_cluster, corpus, tmp_path_factory):
    """The corpus archived once into a local folder: (archive path, summary, events)."""
    return archive_corpus(corpus, tmp_path_factory.mktemp("archive") / "arch")

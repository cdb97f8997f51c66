"""An S3 endpoint for one test: moto's server (`.ci/setup.d/32-s3.sh` puts it in `.venv-s3/`), on a
free port of 127.0.0.1, with one bucket, stopped after.

    with s3_server() as s3:
        env = s3.env            # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, … for the process that writes
        data_path = s3.url("lake/")
"""
from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.postgres_server import free_port

__all__ = ["S3Server", "s3_server"]

ROOT = Path(__file__).resolve().parents[2]
MOTO = ROOT / ".venv-s3" / "bin" / "moto_server"


class S3Server:
    def __init__(self, bucket: str = "lynkr-lake"):
        if not MOTO.exists():
            msg = "moto's S3 server is not installed (run .ci/setup.d/32-s3.sh)"
            if os.environ.get("CI"):
                pytest.fail(msg)
            pytest.skip(msg)
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "lynkr-test",
                "AWS_SECRET_ACCESS_KEY": "lynkr-test-secret", "AWS_REGION": "us-east-1"}

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def keys(self) -> list[str]:
        with urllib.request.urlopen(f"{self.endpoint}/{self.bucket}?list-type=2", timeout=30) as r:
            text = r.read().decode()
        return [part.split("</Key>")[0] for part in text.split("<Key>")[1:]]

    def start(self) -> "S3Server":
        self.proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited {self.proc.returncode}")
            try:
                req = urllib.request.Request(f"{self.endpoint}/{self.bucket}", method="PUT")
                with urllib.request.urlopen(req, timeout=5):
                    return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError("moto_server did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def s3_server():
    s3 = S3Server()
    try:
        yield s3.start()
    finally:
        s3.stop()

"""Starts a real gateway for the tests: `privgate demo --no-fhe` (the sample bank with its
analytics datasets, dev certificates and analysts' tokens) in a temporary directory, on
free loopback ports. The binary is $PRIVGATE_BIN, else the repository's debug build
(target/debug/privgate, made by `cargo test --no-run`)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterator

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, directory: Path, port: int, process: subprocess.Popen) -> None:
        self.dir = directory
        self.url = f"https://localhost:{port}/analytics/v1"
        self.ca = str(directory / "certs" / "ca.pem")
        self.process = process

    def token(self, name: str) -> str:
        return (self.dir / "tokens" / f"{name}.jwt").read_text().strip()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    binary = os.environ.get("PRIVGATE_BIN", str(REPO / "target" / "debug" / "privgate"))
    if not Path(binary).exists():
        pytest.fail(f"{binary} not found: build it with `cargo test --no-run` or set PRIVGATE_BIN")
    directory = tmp_path_factory.mktemp("demo")
    port = _free_port()
    ports = ["--port", str(port), "--admin-port", str(_free_port()),
             "--upstream-port", str(_free_port())]
    log = open(directory / "demo.log", "wb")
    process = subprocess.Popen(
        [binary, "demo", "--no-fhe", "--dir", str(directory / "data"), *ports],
        stdout=log, stderr=subprocess.STDOUT, cwd=directory,
    )
    demo = Demo(directory / "data", port, process)
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail("the demo exited: " + (directory / "demo.log").read_text()[-2000:])
            try:
                if (demo.dir / "certs" / "ca.pem").exists():
                    httpx.get(demo.url + "/datasets", timeout=2,
                              verify=ssl.create_default_context(cafile=demo.ca))
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the demo did not start: " + (directory / "demo.log").read_text()[-2000:])
            time.sleep(0.2)
        yield demo
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def tokens(demo: Demo) -> Dict[str, str]:
    return {
        name: demo.token(name)
        for name in ("analyst", "senior-analyst", "reporting-analyst", "release-officer")
    }

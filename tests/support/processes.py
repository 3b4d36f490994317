"""Start and stop the real processes live tests run: stub replicas, nginx, Prometheus."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STUB = Path(__file__).with_name("openai_stub.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0, expect: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == expect:
                return
        except httpx.HTTPError as e:
            last = str(e)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not answering {expect} after {timeout}s ({last})")


@dataclass
class Stub:
    name: str
    port: int
    ttft_ms: float = 10
    itl_ms: float = 2
    api_key: str | None = None
    model: str = "stub-model"
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Stub":
        env = dict(os.environ, VLLM_API_KEY=self.api_key or "")
        self.proc = subprocess.Popen(
            [sys.executable, str(STUB), "--port", str(self.port), "--name", self.name, "--served-model-name", self.model,
             "--ttft-ms", str(self.ttft_ms), "--itl-ms", str(self.itl_ms)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_http(f"http://{self.address}/health")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stats(self) -> dict:
        return httpx.get(f"http://{self.address}/stub/stats", timeout=5).json()


def start_stubs(n: int, **kwargs) -> list[Stub]:
    return [Stub(f"replica-{i}", free_port(), **kwargs).start() for i in range(n)]


class Nginx:
    def __init__(self, conf: str, workdir: Path):
        self.workdir = workdir
        for sub in ("logs", "tmp"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(conf)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Nginx":
        extra = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        self.proc = subprocess.Popen(
            ["nginx", "-p", str(self.workdir), "-c", str(self.conf), "-e", str(self.workdir / "logs/error.log"), "-g", extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def access_log(self) -> list[str]:
        path = self.workdir / "logs/access.log"
        return path.read_text().splitlines() if path.exists() else []

"""The rendered gateway run for real on 127.0.0.1 in front of replicas: shared by the gateway
tests and benchmarks/gateway_faults.py.

Replicas are tests/support/openai_stub.py (vLLM's auth rules and routes) unless
TIERSCALE_GATEWAY_REPLICA_CMD names another command (e.g. a real `vllm serve`): a format string
with {port}, {name} and {model}; the key is passed as VLLM_API_KEY in the environment, as the
stub and vLLM both read it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx

from components.serving import model_router
from components.small.project import nginx_conf
from tests.support.processes import Nginx, free_port, wait_http
from tests.support.stacks import small_stack

STUB = Path(__file__).resolve().parent.parent / "support" / "openai_stub.py"
KEY = "gateway-test-key-not-a-secret"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def replica_command(port: int, name: str, model: str, ttft_ms: float, itl_ms: float) -> list[str]:
    custom = os.environ.get("TIERSCALE_GATEWAY_REPLICA_CMD")
    if custom:
        return shlex.split(custom.format(port=port, name=name, model=model))
    return [sys.executable, str(STUB), "--port", str(port), "--name", name, "--served-model-name", model,
            "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--backlog", "2048"]


@dataclass
class Replica:
    name: str
    port: int
    model: str = MODEL
    ttft_ms: float = 10
    itl_ms: float = 4
    api_key: Optional[str] = KEY
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "Replica":
        env = dict(os.environ, VLLM_API_KEY=self.api_key or "")
        self.proc = subprocess.Popen(replica_command(self.port, self.name, self.model, self.ttft_ms, self.itl_ms),
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait:
            wait_http(f"http://{self.address}/health", timeout=60)
        return self

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def control(self, **changes) -> dict:
        return httpx.post(f"http://{self.address}/stub/control", json=changes, timeout=5).json()

    def requests(self) -> list[dict]:
        """Every request this replica received (the stub's own log)."""
        return httpx.get(f"http://{self.address}/stub/requests", timeout=5).json()

    def stats(self) -> dict:
        return httpx.get(f"http://{self.address}/stub/stats", timeout=5).json()


def start_replicas(n: int, **kwargs) -> list[Replica]:
    replicas = [Replica(f"replica-{i}", free_port(), **kwargs).start(wait=False) for i in range(n)]
    for r in replicas:
        wait_http(f"http://{r.address}/health", timeout=60)
    return replicas


class Gateway:
    """The stack's rendered nginx.conf, model_router.js, key file (model_router.auth_include)
    and, with `prober`, health_prober.sh, as the Compose project deploys them."""

    def __init__(self, workdir: Path, servers: dict[str, list[str]], stack=None, keys=(KEY,),
                 prober: bool = True, health: bool | None = None, worker_processes: str = "2"):
        """`prober`: run health_prober.sh; `health` (default: with the prober): render the health
        file into the config (a test may write it by hand)."""
        health = prober if health is None else health
        self.workdir = workdir
        self.stack = stack or small_stack()
        self.servers = servers
        self.port, self.status_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "model_router.js").write_text(model_router.router_js())
        auth_file = workdir / model_router.AUTH_FILE
        auth_file.write_text(model_router.auth_include(keys))
        auth_file.chmod(0o600)
        self.health_file = workdir / "health" / "down"
        self.health_file.parent.mkdir(parents=True, exist_ok=True)
        self.targets = workdir / "health" / "targets"
        self.targets.write_text(model_router.probe_targets(self.stack, servers))
        self.conf = nginx_conf(
            self.stack, "gateway-test", servers, listen=f"127.0.0.1:{self.port}",
            status_listen=f"127.0.0.1:{self.status_port}", runtime_dir=str(workdir),
            log_dir=str(workdir / "logs"), temp_dir=str(workdir / "tmp"), js_path=str(workdir / "model_router.js"),
            auth_file=str(auth_file), health_file=str(self.health_file) if health else None,
        ).replace("worker_processes auto;", f"worker_processes {worker_processes};")
        self.nginx = Nginx(self.conf, workdir)
        self.prober_enabled = prober
        self.prober: Optional[subprocess.Popen] = None

    def start(self) -> "Gateway":
        self.nginx.start()
        try:
            wait_http(f"http://127.0.0.1:{self.status_port}/gateway/health", timeout=30)
        except TimeoutError:
            self.nginx.stop()
            log = self.workdir / "logs" / "error.log"
            raise RuntimeError(f"nginx did not start (exit {self.nginx.proc.poll()}): "
                               f"{self.nginx.proc.stdout.read().decode()[-2000:]} "
                               f"{log.read_text()[-2000:] if log.exists() else ''}") from None
        if self.prober_enabled:
            script = self.workdir / model_router.PROBER_FILE
            script.write_text(model_router.prober_sh())
            self.prober = subprocess.Popen(
                ["sh", str(script), str(self.targets), str(self.health_file), str(model_router.PROBE_INTERVAL_S),
                 str(model_router.PROBE_TIMEOUT_S), str(model_router.PROBE_FALL)],
                stdout=subprocess.DEVNULL, stderr=open(self.workdir / "logs" / "prober.log", "w"))
        return self

    def down(self) -> list[str]:
        return self.health_file.read_text().split("\n") if self.health_file.exists() else []

    def nginx_rss_kib(self) -> int:
        """Resident memory of nginx's master and workers together."""
        total = 0
        pids = [self.nginx.proc.pid] + [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(self.nginx.proc.pid)], capture_output=True, text=True).stdout.split()]
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def stop(self) -> None:
        if self.prober and self.prober.poll() is None:
            self.prober.terminate()
            self.prober.wait(timeout=10)
        self.nginx.stop()


def wait_until(predicate, timeout: float, step: float = 0.05) -> float:
    """Seconds until predicate() held; raises TimeoutError."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError(f"not within {timeout}s")

"""Real vLLM OpenAI servers (CPU build, .venv-vllm) for live tests, started once and shared.

    server = VllmServer(port=free_port()).start().wait_ready()
    httpx.post(server.url("/v1/chat/completions"), headers=server.auth, json={...})
    server.stop()            # SIGTERM: vLLM drains for --shutdown-timeout, then exits

The command is the one every tier renders, cut to what a CPU and a 5 M-parameter model need:
  python -m vllm.entrypoints.cli.main serve <tiny model> --served-model-name tiny-llama
    --host 127.0.0.1 --port P --max-model-len 512 --max-num-seqs 16 --enforce-eager
    --kv-cache-memory-bytes 64 MiB --shutdown-timeout S
and the API key by environment (VLLM_API_KEY), as the tiers pass it (components/serving/
vllm_args.py; vLLM reads it when --api-key is absent: vllm/entrypoints/serve/middleware/
register.py). On CPU, --gpu-memory-utilization would be a share of host RAM; the KV cache is
capped instead (--kv-cache-memory-bytes). --enforce-eager skips torch.compile and graph capture
(startup 15-65 s instead of minutes on 2 cores).

`shared_servers(n)` is what the session fixture `real_vllm` in tests/live/conftest.py uses:
servers started in parallel, stopped at session end; each server's log is kept
(build/live-vllm/<port>.log) and printed when it fails to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from components import paths
from components.validate import vllm_parser
from tests.support.processes import free_port
from tests.support.tiny_model import SERVED_NAME, tiny_model

LOG_DIR = paths.REPO_ROOT / "build" / "live-vllm"
KV_CACHE_BYTES = 64 * 1024 * 1024
MAX_MODEL_LEN = 512
START_TIMEOUT_S = float(os.environ.get("TIERSCALE_VLLM_START_TIMEOUT", "240"))


@dataclass
class VllmServer:
    port: int = field(default_factory=free_port)
    api_key: str = "test-key"
    shutdown_timeout_s: int = 20
    extra_args: tuple[str, ...] = ()
    model_dir: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    started_s: float = 0.0
    ready_after_s: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def model(self) -> str:
        return SERVED_NAME

    @property
    def log_file(self) -> Path:
        return LOG_DIR / f"{self.port}.log"

    def command(self) -> list[str]:
        model_dir = self.model_dir or tiny_model()
        return [str(vllm_parser.vllm_python()), "-m", "vllm.entrypoints.cli.main", "serve", str(model_dir),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
                "--max-model-len", str(MAX_MODEL_LEN), "--max-num-seqs", "16", "--enforce-eager",
                "--kv-cache-memory-bytes", str(KV_CACHE_BYTES), "--shutdown-timeout", str(self.shutdown_timeout_s),
                *self.extra_args]

    def start(self) -> "VllmServer":
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, VLLM_API_KEY=self.api_key, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   VLLM_NO_USAGE_STATS="1")
        env.pop("VLLM_LOGGING_LEVEL", None)
        log = self.log_file.open("w")
        self.started_s = time.monotonic()
        # Its own process group: stop() signals the API server, kill() the whole group (engine core).
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(LOG_DIR), start_new_session=True)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "VllmServer":
        deadline = self.started_s + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM on port {self.port} exited {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                if httpx.get(self.url("/health"), timeout=2).status_code == 200:
                    self.ready_after_s = time.monotonic() - self.started_s
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise TimeoutError(f"vLLM on port {self.port} not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM to the API server, as systemd / the kubelet / podman stop send it."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait for the drain (shutdown timeout + margin), then kill what is left."""
        if self.proc is None:
            return None
        self.terminate()
        try:
            self.proc.wait(timeout=timeout if timeout is not None else self.shutdown_timeout_s + 30)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this server started (start_new_session)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def shared_servers(n: int, **kwargs) -> list[VllmServer]:
    """Start n servers at once (they load in parallel) and wait for all of them."""
    tiny_model()  # build once before the servers race for it
    servers = [VllmServer(**kwargs).start() for _ in range(n)]
    try:
        for s in servers:
            s.wait_ready()
    except Exception:
        for s in servers:
            s.kill()
        raise
    return servers

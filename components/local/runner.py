"""`tierscale up --local`: the small tier on this machine, no Docker, no GPU.

What runs (all on 127.0.0.1, each in its own process group, logs under the work directory):
  - one `vllm serve` per replica of every model, from the vLLM CPU build (.venv-vllm, `make
    setup`), with the arguments the stack renders (components/serving/vllm_args.py) except:
    the weights are the tiny generated model (offline, components/validate/tiny_model.py) or the
    stack's Hugging Face repo (`--model hf`), served under the stack's served name; `--host`
    is 127.0.0.1; flags a CPU process cannot take are dropped and printed (tensor/pipeline
    parallel sizes, --quantization, --kv-cache-dtype, --speculative-config, --revision for the
    tiny model); `--kv-cache-memory-bytes` caps the KV cache (on CPU --gpu-memory-utilization
    would be a share of host RAM) and `--enforce-eager` skips graph capture;
  - the rendered nginx gateway (components/small/project.nginx_conf: model router, gateway
    auth with the API key's digest, retries, passive and active health with health_prober.sh);
  - the rendered Prometheus (templates/small/prometheus.yml.j2 and the alert rules) scraping
    the replicas; only the `vllm` job is kept: node, DCGM and nginx exporters do not run here.

Stopping: SIGTERM to each group's leader (vLLM drains for its --shutdown-timeout, nginx and
Prometheus exit), then SIGKILL to whatever is left in the group after the grace period, and a
check that every group is empty. `state.json` in the work directory names the groups, so
`tierscale down --local` can stop a run started elsewhere.

Tests reuse the pieces (Replica, Gateway, PrometheusServer, replica_args) with their own layouts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import httpx
import yaml

from components import paths, templating
from components.serving import model_router, probes
from components.serving.vllm_args import API_KEY_ENV, vllm_serve_args
from components.small import project as small_project

VLLM_VENV = paths.REPO_ROOT / ".venv-vllm"
TINY_MODEL_DIR = paths.REPO_ROOT / "build" / "tiny-llama"
TINY_BUILDER = paths.REPO_ROOT / "components" / "validate" / "tiny_model.py"
# 32 K tokens of the tiny model (8 KiB a token), 21 K of Qwen2.5-0.5B (12 KiB a token): several
# max-length (4096) requests of the demo stack at once; checked against maxModelLen below.
DEFAULT_KV_CACHE_BYTES = 256 * 1024 ** 2
API_KEY_VAR = "TIERSCALE_API_KEY"
MODEL_SOURCES = ("tiny", "hf")
# Flags dropped on a CPU replica (with their value), and bare flags dropped.
_CPU_DROP = ("--tensor-parallel-size", "--pipeline-parallel-size", "--quantization", "--kv-cache-dtype",
             "--speculative-config")
_CPU_DROP_BARE = ("--allow-deprecated-quantization",)
STOP_MARGIN_S = 15


class LocalError(RuntimeError):
    """The local stack could not start (the message says why and what to do)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def vllm_command(venv: Path = VLLM_VENV) -> list[str]:
    exe = venv / "bin" / "vllm"
    if not exe.exists():
        raise LocalError(f"no vLLM CPU build at {venv} (run `make setup`; docs/vllm.md)")
    return [str(exe), "serve"]


def tiny_model(directory: Path = TINY_MODEL_DIR, venv: Path = VLLM_VENV) -> Path:
    """The generated tiny Llama (built once, about 5 s; reused while its recipe is unchanged)."""
    done = subprocess.run([str(venv / "bin" / "python"), str(TINY_BUILDER), str(directory)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise LocalError(f"building the tiny model failed:\n{done.stderr[-2000:]}")
    return directory


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int = 2) -> int:
    return layers * kv_heads * head_dim * 2 * dtype_bytes


def model_kv_bytes_per_token(model, weights: Path | str) -> int:
    """Per-token KV cache of what the replica loads: the tiny model's config.json, else the facts."""
    config = Path(weights) / "config.json"
    if config.exists():
        c = json.loads(config.read_text())
        heads = c["num_attention_heads"]
        return kv_bytes_per_token(c["num_hidden_layers"], c.get("num_key_value_heads", heads),
                                  c.get("head_dim") or c["hidden_size"] // heads)
    f = model.facts
    return kv_bytes_per_token(f.layers, f.kv_heads, f.head_dim)


def replica_args(model, port: int, weights: str, kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES,
                 tiny: bool = True) -> tuple[list[str], list[str]]:
    """(arguments after `vllm serve`, what was dropped) for one CPU replica of `model`:
    the stack's own list (vllm_serve_args) with the changes the module docstring lists."""
    rendered = vllm_serve_args(model, port)
    args, dropped = [weights], []
    i = 1
    while i < len(rendered):
        flag = rendered[i]
        if flag in _CPU_DROP or (tiny and flag == "--revision"):
            if not (flag in ("--tensor-parallel-size", "--pipeline-parallel-size") and rendered[i + 1] == "1"):
                dropped += [flag, rendered[i + 1]]
            i += 2
            continue
        if flag in _CPU_DROP_BARE:
            dropped.append(flag)
            i += 1
            continue
        if flag == "--host":
            args += ["--host", "127.0.0.1"]
            i += 2
            continue
        args.append(flag)
        i += 1
    args += ["--kv-cache-memory-bytes", str(kv_cache_bytes), "--enforce-eager"]
    return args, dropped


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Process:
    """One child in its own process group (the group leader is the child itself)."""

    name: str
    argv: list[str]
    log: Path
    env: dict = field(default_factory=lambda: dict(os.environ))
    proc: Optional[subprocess.Popen] = field(default=None, repr=False)

    def start(self) -> "Process":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=fh,
                                         stderr=subprocess.STDOUT, process_group=0)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float) -> None:
        stop_groups([self.pid], grace_s, [self.proc] if self.proc else [])


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(pgids: list[int], grace_s: float, children: list[subprocess.Popen] = ()) -> list[int]:
    """SIGTERM each group's leader, wait up to grace_s for the whole group to be gone, then
    SIGKILL what is left. Returns the groups that had to be killed."""
    for pgid in pgids:
        try:
            os.kill(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def reap() -> None:
        for child in children:
            child.poll()

    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        reap()
        if not any(group_alive(g) for g in pgids):
            return []
        time.sleep(0.1)
    killed = [g for g in pgids if group_alive(g)]
    for g in killed:
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(group_alive(g) for g in killed):
        reap()
        time.sleep(0.05)
    return killed


def wait_http(url: str, timeout: float, expect: int = 200, proc: Optional[Process] = None,
              headers: Optional[dict] = None) -> float:
    """Seconds until `url` answered `expect`; LocalError if `proc` exits first or on timeout."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        if proc is not None and not proc.alive():
            raise LocalError(f"{proc.name} exited (code {proc.proc.returncode}) before {url} answered; "
                             f"its log ({proc.log}):\n{_log_tail(proc.log)}")
        try:
            code = httpx.get(url, timeout=2, headers=headers).status_code
            if code == expect:
                return time.monotonic() - start
            last = f"HTTP {code}"
        except httpx.HTTPError as e:
            last = type(e).__name__
        time.sleep(0.5)
    raise LocalError(f"{url} did not answer {expect} within {timeout:.0f} s (last: {last})"
                     + (f"; log {proc.log}:\n{_log_tail(proc.log)}" if proc else ""))


class Replica(Process):
    """A real `vllm serve` on 127.0.0.1."""

    def __init__(self, name: str, args: list[str], log: Path, api_key: Optional[str], offline: bool = True,
                 venv: Path = VLLM_VENV):
        env = dict(os.environ, VLLM_NO_USAGE_STATS="1")
        env[API_KEY_ENV] = api_key or ""
        if not api_key:
            env.pop(API_KEY_ENV)
        if offline:
            env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        super().__init__(name, [*vllm_command(venv), *args], log, env)
        self.port = int(args[args.index("--port") + 1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    if not found:
        raise LocalError("nginx not found (Debian: apt-get install nginx-light libnginx-mod-http-js; `make setup`)")
    return found


class Gateway:
    """The rendered nginx gateway, its njs router, key file and health prober, in `workdir`."""

    def __init__(self, stack, stack_name: str, servers: dict[str, list[str]], workdir: Path, keys: list[str],
                 port: int, status_port: Optional[int] = None, prober: bool = True,
                 worker_processes: Optional[str] = None, weights: Optional[dict[str, list[int]]] = None):
        self.workdir = Path(workdir)
        for sub in ("logs", "tmp", "health"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.port = port
        self.status_port = status_port or free_port()
        self.url = f"http://127.0.0.1:{port}"
        js = self.workdir / model_router.JS_FILE
        js.write_text(model_router.router_js())
        auth = self.workdir / model_router.AUTH_FILE
        auth.touch(mode=0o600)
        auth.chmod(0o600)
        auth.write_text(model_router.auth_include(keys))
        self.health_file = self.workdir / "health" / "down"
        targets = self.workdir / "health" / "targets"
        targets.write_text(model_router.probe_targets(stack, servers))
        conf = small_project.nginx_conf(
            stack, stack_name, servers, listen=f"127.0.0.1:{port}", status_listen=f"127.0.0.1:{self.status_port}",
            runtime_dir=str(self.workdir), log_dir=str(self.workdir / "logs"), temp_dir=str(self.workdir / "tmp"),
            js_path=str(js), auth_file=str(auth), health_file=str(self.health_file) if prober else None,
            weights_by_model=weights)
        if worker_processes:
            conf = conf.replace("worker_processes auto;", f"worker_processes {worker_processes};")
        self.conf = self.workdir / "nginx.conf"
        self.conf.write_text(conf)
        extra = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
        self.nginx = Process("gateway", [nginx_binary(), "-p", str(self.workdir), "-c", str(self.conf),
                                         "-e", str(self.workdir / "logs" / "error.log"), "-g", extra],
                             self.workdir / "logs" / "nginx.out")
        self.prober: Optional[Process] = None
        if prober:
            script = self.workdir / model_router.PROBER_FILE
            script.write_text(model_router.prober_sh())
            self.prober = Process("gateway-prober", [
                "sh", str(script), str(targets), str(self.health_file), str(model_router.PROBE_INTERVAL_S),
                str(model_router.PROBE_TIMEOUT_S), str(model_router.PROBE_FALL)], self.workdir / "logs" / "prober.log")

    @property
    def processes(self) -> list[Process]:
        return [self.nginx] + ([self.prober] if self.prober else [])

    def check(self) -> None:
        done = subprocess.run([nginx_binary(), "-t", "-p", str(self.workdir), "-c", str(self.conf),
                               "-e", str(self.workdir / "logs" / "error.log")], capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalError(f"nginx -t refused the rendered gateway config:\n{done.stderr}")

    def start(self) -> "Gateway":
        self.nginx.start()
        wait_http(f"http://127.0.0.1:{self.status_port}/gateway/health", 30, proc=self.nginx)
        if self.prober:
            self.prober.start()
        return self

    def access_log(self) -> list[str]:
        path = self.workdir / "logs" / "access.log"
        return path.read_text().splitlines() if path.exists() else []


def prometheus_config(stack, stack_name: str, servers: dict[str, list[str]], scrape_interval_s: Optional[float] = None) -> dict:
    """The rendered prometheus.yml (templates/small/prometheus.yml.j2) for replicas on 127.0.0.1,
    with only the `vllm` job (no exporters run locally)."""
    text = templating.render("small/prometheus.yml.j2", stack_name=stack_name, monitoring=stack.spec.monitoring,
                             gateway=stack.spec.gateway, status_port=small_project.NGINX_STATUS_PORT,
                             models=[{"name": m, "targets": t} for m, t in servers.items()])
    config = yaml.safe_load(text)
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] == "vllm"]
    if scrape_interval_s:
        config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = f"{scrape_interval_s:g}s"
    return config


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if not found:
        raise LocalError("prometheus not found (Debian: apt-get install prometheus; `make setup`)")
    return found


class PrometheusServer(Process):
    """Prometheus with `config` (its rule files next to it), data in workdir/data."""

    def __init__(self, config: dict, workdir: Path, port: int, rules: Optional[dict[str, str]] = None):
        workdir = Path(workdir)
        (workdir / "rules").mkdir(parents=True, exist_ok=True)
        for name, text in (rules or {}).items():
            (workdir / "rules" / name).write_text(text)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = port
        # Debian's package runs it as the `prometheus` user; the local copy only needs a
        # directory and the loopback port. Stops within a few seconds of SIGTERM.
        super().__init__("prometheus", [
            prometheus_binary(), f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle"],
            workdir / "prometheus.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "PrometheusServer":
        super().start()
        wait_http(f"{self.url}/-/ready", 60, proc=self)
        return self

    def query(self, promql: str) -> list[dict]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        return reply["data"]["result"]


@dataclass
class LocalStack:
    """A whole small-tier stack on 127.0.0.1 (see the module docstring)."""

    stack_name: str
    stacks_dir: Path = paths.STACKS_DIR
    workdir: Optional[Path] = None
    model_source: str = "tiny"
    replicas: Optional[int] = None          # per model; default: the stack's own count
    api_key: Optional[str] = None           # default: $TIERSCALE_API_KEY, else generated
    port: Optional[int] = None              # gateway; default: the stack's gateway.port
    prometheus_port: int = 9090
    kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES
    venv: Path = VLLM_VENV
    say: Callable[[str], None] = print
    generated_key: bool = field(default=False, init=False)
    replica_procs: list[Replica] = field(default_factory=list, init=False)
    gateway: Optional[Gateway] = field(default=None, init=False)
    prometheus: Optional[PrometheusServer] = field(default=None, init=False)

    def __post_init__(self) -> None:
        from components.spec.stack_file import load_stack

        if self.model_source not in MODEL_SOURCES:
            raise LocalError(f"--model {self.model_source!r}: one of {', '.join(MODEL_SOURCES)}")
        self.workdir = Path(self.workdir or paths.REPO_ROOT / "build" / "local" / self.stack_name)
        self.stack = load_stack(self.stack_name, self.stacks_dir)
        if self.stack.spec.tier != "small":
            raise LocalError(f"stack {self.stack_name} is tier {self.stack.spec.tier}: --local runs small-tier stacks")
        if self.stack.spec.gateway.kind != "nginx":
            raise LocalError(f"stack {self.stack_name}: gateway.kind {self.stack.spec.gateway.kind}; --local runs the nginx gateway")
        if self.api_key is None:
            self.api_key = os.environ.get(API_KEY_VAR) or None
        if self.api_key is None:
            self.api_key = secrets.token_hex(16)
            self.generated_key = True
        self.port = self.port or self.stack.spec.gateway.port

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def processes(self) -> list[Process]:
        out: list[Process] = [*self.replica_procs]
        if self.gateway:
            out += self.gateway.processes
        if self.prometheus:
            out.append(self.prometheus)
        return out

    def _plan(self) -> dict[str, list[str]]:
        tiny = self.model_source == "tiny"
        weights_tiny = str(tiny_model(venv=self.venv)) if tiny else None
        servers: dict[str, list[str]] = {}
        for model in self.stack.models:
            count = self.replicas or model.min_replicas
            weights = weights_tiny or model.hf_repo
            need = model.max_model_len * model_kv_bytes_per_token(model, weights)
            if need > self.kv_cache_bytes:
                raise LocalError(f"model {model.name}: one {model.max_model_len}-token request needs {need / 2**20:.0f} MiB "
                                 f"of KV cache, above --kv-cache-bytes {self.kv_cache_bytes / 2**20:.0f} MiB: raise it or "
                                 "lower maxModelLen")
            for i in range(count):
                port = free_port()
                args, dropped = replica_args(model, port, weights, self.kv_cache_bytes, tiny=tiny)
                if dropped and i == 0:
                    self.say(f"note: {model.name}: not passed to the CPU replicas: {' '.join(dropped)}")
                name = f"vllm-{model.name}-{i}"
                self.replica_procs.append(Replica(name, args, self.workdir / "logs" / f"{name}.log", self.api_key,
                                                  offline=tiny, venv=self.venv))
                servers.setdefault(model.name, []).append(f"127.0.0.1:{port}")
        return servers

    def _wait_replicas(self, t0: float, timeout: float, report_every_s: float = 30) -> None:
        """Until every replica answers /health (LocalError when one exits or at the timeout),
        with a progress line every report_every_s."""
        pending = list(self.replica_procs)
        next_report = time.monotonic() + report_every_s
        while pending:
            for r in list(pending):
                if not r.alive():
                    raise LocalError(f"{r.name} exited (code {r.proc.returncode}) while loading; its log ({r.log}):\n"
                                     f"{_log_tail(r.log)}")
                try:
                    if httpx.get(f"{r.url}/health", timeout=2).status_code == 200:
                        pending.remove(r)
                except httpx.HTTPError:
                    pass
            elapsed = time.monotonic() - t0
            if pending and elapsed > timeout:
                raise LocalError(f"{', '.join(r.name for r in pending)} not answering /health after {timeout:.0f} s "
                                 f"(a busy machine loads slower: --timeout); last log lines:\n{_log_tail(pending[0].log)}")
            if pending and time.monotonic() >= next_report:
                done = len(self.replica_procs) - len(pending)
                self.say(f"  ... {done} of {len(self.replica_procs)} replica(s) answering after {elapsed:.0f} s")
                next_report += report_every_s
            if pending:
                time.sleep(0.5)

    def _write_state(self) -> None:
        self.state_file.write_text(json.dumps({
            "runner": os.getpid(), "url": self.url, "prometheus": self.prometheus.url if self.prometheus else None,
            "groups": {p.name: p.pid for p in self.processes() if p.proc}}, indent=1))

    def up(self, ready_timeout_s: Optional[float] = None) -> dict:
        """Start everything and wait until a completion went through the gateway. Returns timings."""
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        existing = read_state(self.workdir)
        if existing and any(group_alive(g) for g in existing["groups"].values()):
            raise LocalError(f"{self.stack_name} is already running locally ({existing['url']}); stop it with "
                             f"`tierscale down --local --stack {self.stack_name}`")
        if not port_free(self.port):
            raise LocalError(f"127.0.0.1:{self.port} is in use: pick another gateway port with --port")
        if self.prometheus_port and not port_free(self.prometheus_port):
            raise LocalError(f"127.0.0.1:{self.prometheus_port} is in use: pick another with --prometheus-port")
        if self.workdir.exists():
            shutil.rmtree(self.workdir)  # last run's logs, configs and Prometheus data
        (self.workdir / "logs").mkdir(parents=True)
        key_file = self.workdir / "api-key"
        key_file.touch(mode=0o600)
        key_file.write_text(self.api_key + "\n")
        servers = self._plan()
        timings["model"] = time.monotonic() - t0
        self.gateway = Gateway(self.stack, self.stack_name, servers, self.workdir / "gateway", [self.api_key], self.port)
        self.gateway.check()
        try:
            for r in self.replica_procs:
                r.start()
            self._write_state()
            self.say(f"starting {len(self.replica_procs)} vLLM replica(s) (logs: {self.workdir / 'logs'}) ...")
            if self.prometheus_port:
                self.prometheus = PrometheusServer(
                    prometheus_config(self.stack, self.stack_name, servers), self.workdir / "prometheus",
                    self.prometheus_port, {"tierscale-alerts.yml": small_project.alert_rules_file(self.stack)}).start()
            self.gateway.start()
            self._write_state()
            timeout = ready_timeout_s or (900 if self.model_source == "tiny" else 1800)
            self._wait_replicas(t0, timeout)
            timings["replicas"] = time.monotonic() - t0
            wait_http(f"{self.url}{model_router.READY_PATH}", 30, proc=self.gateway.nginx)
            reply = httpx.post(f"{self.url}/v1/chat/completions", timeout=60,
                               headers={"Authorization": f"Bearer {self.api_key}"},
                               json={"model": self.stack.models[0].served_model_name, "max_tokens": 16,
                                     "messages": [{"role": "user", "content": "Say hello."}]})
            if reply.status_code != 200:
                raise LocalError(f"the first completion through the gateway failed: HTTP {reply.status_code} {reply.text[:300]}")
            timings["first_completion"] = time.monotonic() - t0
            self.first_reply = reply.json()["choices"][0]["message"]["content"]
        except BaseException:
            self.down()
            raise
        return timings

    def down(self, grace_s: Optional[float] = None) -> list[str]:
        """Stop every process (see the module docstring); returns the names that needed SIGKILL."""
        procs = [p for p in self.processes() if p.proc]
        grace = grace_s if grace_s is not None else probes.VLLM_SHUTDOWN_TIMEOUT_S + STOP_MARGIN_S
        killed = stop_groups([p.pid for p in procs], grace, [p.proc for p in procs])
        self.state_file.unlink(missing_ok=True)
        return [p.name for p in procs if p.pid in killed]

    def banner(self) -> str:
        model = self.stack.models[0].served_model_name
        key_hint = "$(cat " + str(self.workdir / "api-key") + ")"
        what = ("the tiny generated model (random weights: the text is noise)" if self.model_source == "tiny"
                else "the Hugging Face weights")
        lines = [
            "",
            f"tierscale {self.stack_name} is up on this machine ({len(self.replica_procs)} vLLM CPU replica(s), {what}).",
            f"  base URL     {self.url}/v1",
            f"  models       {', '.join(m.served_model_name for m in self.stack.models)}",
        ]
        if self.generated_key:
            lines.append(f"  API key      {self.api_key}   (generated; also in {self.workdir / 'api-key'})")
        else:
            lines.append(f"  API key      from ${API_KEY_VAR}")
        if self.prometheus:
            lines.append(f"  Prometheus   {self.prometheus.url}")
        lines += [
            f"  logs         {self.workdir / 'logs'}",
            "",
            "Try it:",
            f"  curl {self.url}/v1/chat/completions -H \"Authorization: Bearer {key_hint}\" \\",
            "    -H 'Content-Type: application/json' \\",
            f"    -d '{{\"model\": \"{model}\", \"max_tokens\": 32, \"messages\": [{{\"role\": \"user\", \"content\": \"Hello!\"}}]}}'",
            "",
            f"  python3 -c 'from openai import OpenAI; c = OpenAI(base_url=\"{self.url}/v1\", "
            f"api_key=open(\"{self.workdir / 'api-key'}\").read().strip()); "
            f"print(c.chat.completions.create(model=\"{model}\", max_tokens=32, "
            "messages=[{\"role\": \"user\", \"content\": \"Hello!\"}]).choices[0].message.content)'",
            "",
            f"Stop: Ctrl-C here, or `make demo-stop` / `tierscale down --local --stack {self.stack_name}`.",
        ]
        return "\n".join(lines)

    def watch(self, stop_requested: Callable[[], bool], poll_s: float = 1.0) -> None:
        """Until stop_requested(): report a process that exits (it stays down; nginx routes around a replica)."""
        reported: set[str] = set()
        while not stop_requested():
            for p in self.processes():
                if p.name not in reported and not p.alive():
                    reported.add(p.name)
                    self.say(f"warning: {p.name} exited (code {p.proc.returncode}); log: {p.log}\n{_log_tail(p.log, 10)}")
            time.sleep(poll_s)


def _is_tierscale(pid: int) -> bool:
    """The recorded runner pid still names a tierscale process (not a recycled pid)."""
    try:
        return b"tierscale" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def read_state(workdir: Path) -> Optional[dict]:
    path = Path(workdir) / "state.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stop_recorded(workdir: Path, grace_s: float = probes.VLLM_SHUTDOWN_TIMEOUT_S + STOP_MARGIN_S) -> Optional[dict]:
    """`tierscale down --local`: ask the runner to stop (it stops its children), then stop any
    group state.json still names. Returns the state found (None: nothing recorded)."""
    state = read_state(workdir)
    if state is None:
        return None
    runner = state.get("runner")
    if runner and runner != os.getpid() and _is_tierscale(runner):
        try:
            os.kill(runner, signal.SIGTERM)
            deadline = time.monotonic() + grace_s + 5
            while time.monotonic() < deadline:
                os.kill(runner, 0)
                time.sleep(0.2)
        except ProcessLookupError:
            pass
    groups = [g for g in state.get("groups", {}).values() if group_alive(g)]
    state["killed"] = stop_groups(groups, grace_s) if groups else []
    (Path(workdir) / "state.json").unlink(missing_ok=True)
    return state

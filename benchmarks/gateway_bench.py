#!/usr/bin/env python3
"""Gateway benchmark: what the small tier's gateway costs per request.

    venv/bin/python benchmarks/gateway_bench.py            # one run, ~2-3 minutes
    venv/bin/python benchmarks/gateway_bench.py --json build/gateway_bench.json

One run on loopback: stub vLLM replicas (tests/support/openai_stub.py) with a fixed latency
(first token after --ttft-ms, then one token every --itl-ms), two models with two replicas
each, and --concurrency streamed chat completions in flight, sent three ways. The defaults
(200 streams of 8 tokens, 200 ms to the first, 50 ms apart: ~360 requests/s) keep the Python
stubs well below the machine's capacity on 2 cores, so what the gateway adds is not hidden by
the replicas queueing for CPU:

- direct: each client connection to one replica (no gateway);
- nginx: the rendered nginx.conf and njs model router (components/small/project.py), the
  body's `model` picking the upstream, least_conn across each model's replicas;
- litellm: the rendered LiteLLM config (components/small/project.py litellm_config) on the
  pinned LiteLLM proxy in .venv-litellm, with Redis for its routing state, started the way
  tests/small/test_litellm_live.py starts it.

It reports end-to-end latency percentiles, the latency each gateway adds over direct (p50,
p99), and the gateway's CPU time (user + system, every process of it: nginx master and
workers; LiteLLM's proxy and Redis) per 1,000 requests, then the ratios. The load client is a
minimal asyncio HTTP/1.1 client (keep-alive, chunked SSE), so it costs little CPU next to what
it measures. Machine-dependent: the figures in README.md name the machine they came from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from components.serving import model_router  # noqa: E402
from components.serving.model_router import router_js  # noqa: E402
from components.small.project import litellm_config, nginx_conf  # noqa: E402
from tests.support.processes import free_port, wait_http  # noqa: E402
from tests.support.stacks import small_stack  # noqa: E402

STUB = REPO / "tests" / "support" / "openai_stub.py"
LITELLM = REPO / ".venv-litellm" / "bin" / "litellm"
KEY = "gateway-bench-key"
MODELS = {"llama-8b": "meta-llama/Llama-3.1-8B-Instruct", "qwen-14b": "Qwen/Qwen2.5-14B-Instruct-AWQ"}
SPEC_MODELS = [
    {"id": MODELS["llama-8b"], "name": "llama-8b", "replicas": 2},
    {"id": MODELS["qwen-14b"], "name": "qwen-14b", "quantization": "awq", "replicas": 2},
]


# --- load ------------------------------------------------------------------------------------

async def _one_stream(reader, writer, host: str, path: str, body: bytes, auth: str) -> tuple[float, int]:
    """One streamed completion on an open keep-alive connection: (seconds to the last byte, status)."""
    start = time.perf_counter()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            await reader.readexactly(size + 2)
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    if close:
        raise ConnectionResetError("server closed the connection")
    return time.perf_counter() - start, status


async def run_load(targets: list[tuple[str, int, str]], requests: int, concurrency: int, max_tokens: int
                   ) -> tuple[list[float], int, float]:
    """`concurrency` workers, each on its own connection to targets[i % len]; every worker
    alternates between the two models. Returns latencies (s), errors and wall time."""
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def worker(i: int) -> None:
        nonlocal remaining, errors
        host, port, only_model = targets[i % len(targets)]
        reader = writer = None
        n = i
        while remaining > 0:
            remaining -= 1
            model = only_model or list(MODELS.values())[n % 2]
            n += 1
            body = json.dumps({"model": model, "stream": True, "max_tokens": max_tokens,
                               "messages": [{"role": "user", "content": "Say something."}]}).encode()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                elapsed, status = await _one_stream(reader, writer, f"{host}:{port}", "/v1/chat/completions", body, KEY)
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return latencies, errors, time.perf_counter() - start


# --- processes -------------------------------------------------------------------------------

def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU of these processes and all their descendants (live ones)."""
    total = 0.0
    seen = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


def start_stubs(ttft_ms: float, itl_ms: float) -> dict[str, list[tuple[subprocess.Popen, int]]]:
    stubs: dict[str, list[tuple[subprocess.Popen, int]]] = {}
    env = dict(os.environ, VLLM_API_KEY=KEY)
    for name, served in MODELS.items():
        for replica in range(2):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, str(STUB), "--port", str(port), "--name", f"{name}-{replica}",
                 "--served-model-name", served, "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--backlog", "1024"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stubs.setdefault(name, []).append((proc, port))
    for replicas in stubs.values():
        for _, port in replicas:
            wait_http(f"http://127.0.0.1:{port}/health")
    return stubs


def start_nginx(stack, servers: dict[str, list[str]], work: Path) -> tuple[subprocess.Popen, int]:
    for sub in ("logs", "tmp"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "model_router.js").write_text(router_js())
    # The gateway authenticates every request itself: its key file, as the Compose project mounts it.
    (work / model_router.AUTH_FILE).write_text(model_router.auth_include([KEY]))
    port, status_port = free_port(), free_port()
    conf = nginx_conf(stack, "gateway-bench", servers, listen=f"127.0.0.1:{port}",
                      status_listen=f"127.0.0.1:{status_port}", runtime_dir=str(work), log_dir=str(work / "logs"),
                      temp_dir=str(work / "tmp"), js_path=str(work / "model_router.js"),
                      auth_file=str(work / model_router.AUTH_FILE), health_file=str(work / "health-down"))
    # As deployed: njs reads the prober's (here empty) health file on every request.
    (work / "health-down").write_text("")
    (work / "nginx.conf").write_text(conf)
    extra = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    proc = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "logs/error.log"),
                             "-g", extra], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{status_port}/gateway/health")
    return proc, port


def start_litellm(stack, servers: dict[str, list[str]], work: Path) -> tuple[list[subprocess.Popen], int]:
    redis_port, port = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    config = litellm_config(stack, servers, redis=("127.0.0.1", redis_port))
    (work / "litellm.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = dict(os.environ, VLLM_API_KEY=KEY, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
               HF_HUB_OFFLINE="1")
    proxy = subprocess.Popen([str(LITELLM), "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                              "--port", str(port)], env=env, stdout=open(work / "litellm.log", "w"),
                             stderr=subprocess.STDOUT, cwd=work)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    return [proxy, redis], port


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


# --- one configuration -----------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else values[0]


def measure(name: str, targets, gateway_pids: list[int], args) -> dict:
    asyncio.run(run_load(targets, args.warmup, args.concurrency, args.max_tokens))
    before = cpu_seconds(gateway_pids)
    latencies, errors, wall = asyncio.run(run_load(targets, args.requests, args.concurrency, args.max_tokens))
    cpu = cpu_seconds(gateway_pids) - before
    done = len(latencies)
    result = {
        "requests": done, "errors": errors, "wall_s": round(wall, 2), "requests_per_s": round(done / wall, 1),
        "e2e_ms": {"p50": round(pct(latencies, 50) * 1000, 2), "p99": round(pct(latencies, 99) * 1000, 2),
                   "mean": round(statistics.mean(latencies) * 1000, 2)},
        "gateway_cpu_s_per_1000": round(cpu / done * 1000, 3) if gateway_pids else 0.0,
    }
    print(f"{name:8} {done:6} ok {errors:4} err  {result['requests_per_s']:8.1f} req/s  "
          f"p50 {result['e2e_ms']['p50']:8.2f} ms  p99 {result['e2e_ms']['p99']:8.2f} ms  "
          f"gateway CPU {result['gateway_cpu_s_per_1000']:7.3f} s/1000 req", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=200, help="streams in flight (200)")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per configuration (3000)")
    parser.add_argument("--litellm-requests", type=int, default=1500, help="measured requests through LiteLLM (1500)")
    parser.add_argument("--warmup", type=int, default=400, help="requests before measuring (400)")
    parser.add_argument("--max-tokens", type=int, default=8, help="tokens per streamed response (8)")
    parser.add_argument("--ttft-ms", type=float, default=200.0, help="stub time to first token (200)")
    parser.add_argument("--itl-ms", type=float, default=50.0, help="stub inter-token latency (50)")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        parser.error("nginx not installed (make setup)")

    stack = small_stack(models=SPEC_MODELS)
    stubs = start_stubs(args.ttft_ms, args.itl_ms)
    servers = {name: [f"127.0.0.1:{port}" for _, port in replicas] for name, replicas in stubs.items()}
    results: dict[str, dict] = {}
    print(f"{args.concurrency} concurrent streams, {args.max_tokens} tokens each, stub TTFT {args.ttft_ms} ms, "
          f"ITL {args.itl_ms} ms; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            direct = [("127.0.0.1", port, MODELS[name]) for name, replicas in stubs.items() for _, port in replicas]
            results["direct"] = measure("direct", direct, [], args)
            nginx, port = start_nginx(stack, servers, Path(tmp) / "nginx")
            try:
                results["nginx"] = measure("nginx", [("127.0.0.1", port, None)], [nginx.pid], args)
            finally:
                stop([nginx])
            if not args.skip_litellm:
                if not LITELLM.exists():
                    parser.error(f"{LITELLM} missing (make setup creates .venv-litellm)")
                procs, port = start_litellm(stack, servers, Path(tmp))
                try:
                    lite_args = argparse.Namespace(**{**vars(args), "requests": args.litellm_requests})
                    results["litellm"] = measure("litellm", [("127.0.0.1", port, None)], [p.pid for p in procs], lite_args)
                finally:
                    stop(procs)
    finally:
        stop([p for replicas in stubs.values() for p, _ in replicas])

    d = results["direct"]["e2e_ms"]
    summary: dict = {}
    for gw in ("nginx", "litellm"):
        if gw not in results:
            continue
        e = results[gw]["e2e_ms"]
        summary[gw] = {"added_p50_ms": round(e["p50"] - d["p50"], 2), "added_p99_ms": round(e["p99"] - d["p99"], 2),
                       "p50_vs_direct": round(e["p50"] / d["p50"], 3), "p99_vs_direct": round(e["p99"] / d["p99"], 3),
                       "cpu_s_per_1000": results[gw]["gateway_cpu_s_per_1000"]}
    if "litellm" in summary and summary["litellm"]["cpu_s_per_1000"]:
        summary["nginx_cpu_vs_litellm"] = round(summary["nginx"]["cpu_s_per_1000"] / summary["litellm"]["cpu_s_per_1000"], 4)
    print()
    for gw in ("nginx", "litellm"):
        if gw in summary:
            s = summary[gw]
            print(f"{gw:8} adds p50 {s['added_p50_ms']:+7.2f} ms  p99 {s['added_p99_ms']:+7.2f} ms  "
                  f"(x{s['p50_vs_direct']:.3f} / x{s['p99_vs_direct']:.3f} of direct)  CPU {s['cpu_s_per_1000']:.3f} s per 1000 requests")
    if "nginx_cpu_vs_litellm" in summary:
        print(f"nginx CPU per request = {summary['nginx_cpu_vs_litellm']:.4f} x LiteLLM's "
              f"(1/{1 / summary['nginx_cpu_vs_litellm']:.0f})")
    targets = {"nginx_added_p99_ms_max": 1.0, "nginx_cpu_vs_litellm_max": 0.1}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                         "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                                         "results": results, "summary": summary, "targets": targets}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Measure load-generator candidates against the stub backend (not a test; run by hand).

Why `tierscale bench` is built on what it is built on: each candidate drives the same stub
(tests/support/openai_stub.py) with C concurrent streaming chat completions for D seconds on
loopback, and we record the generator process's own CPU-seconds (user+sys, from wait4) per
request and the rate it achieved. A generator that burns most of a core per few hundred
requests/s would be the bottleneck on a 2-core load box.

    venv/bin/python tests/bench/measure_generators.py --locust /path/to/venv-with-locust/bin/locust

Candidates: `httpx` (asyncio + httpx.AsyncClient, what components/bench/client.py does),
`locust` (FastHttpUser/geventhttpclient, streaming the SSE body, headless), if --locust is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from urllib.request import urlopen
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.support.processes import STUB, free_port, wait_http  # noqa: E402

HTTPX_CLIENT = textwrap.dedent('''
    import asyncio, json, sys, time
    import httpx
    url, conc, dur, tokens = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    done = errors = 0
    async def worker(client, stop):
        global done, errors
        body = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens,
                "stream": True, "stream_options": {"include_usage": True}}
        while time.monotonic() < stop:
            try:
                async with client.stream("POST", url, json=body) as r:
                    first = None
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            ev = json.loads(line[6:])
                            if first is None:
                                first = time.monotonic()
                done += 1
            except Exception:
                errors += 1
    async def main():
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            stop = time.monotonic() + dur
            await asyncio.gather(*(worker(client, stop) for _ in range(conc)))
    asyncio.run(main())
    print(json.dumps({"requests": done, "errors": errors}))
''')

LOCUSTFILE = textwrap.dedent('''
    import json, time
    from locust import FastHttpUser, task, events
    TOKENS = int(__import__("os").environ["GEN_TOKENS"])
    class Chat(FastHttpUser):
        @task
        def chat(self):
            body = {"model": "stub-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": TOKENS,
                    "stream": True, "stream_options": {"include_usage": True}}
            with self.client.post("/v1/chat/completions", json=body, stream=True, catch_response=True) as r:
                first = None
                raw = r._response
                while True:
                    line = raw.readline(b"\\n")  # as soon as a line is there (iter_content waits for full blocks)
                    if not line:
                        break
                    if line.startswith(b"data: {"):
                        json.loads(line[6:])
                        if first is None:
                            first = time.monotonic()
                r.success()
''')


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out_file = proc.stdout
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    return wall, usage.ru_utime + usage.ru_stime, out_file.read() + proc.stderr.read()[-2000:]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--ttft-ms", type=float, default=50)
    p.add_argument("--itl-ms", type=float, default=10)
    p.add_argument("--locust", help="path of a locust executable (its own venv)")
    a = p.parse_args()
    port = free_port()
    stub = subprocess.Popen([sys.executable, str(STUB), "--port", str(port), "--ttft-ms", str(a.ttft_ms),
                             "--itl-ms", str(a.itl_ms), "--backlog", "2048"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    stats = lambda: json.loads(urlopen(url + "/stub/stats").read())  # noqa: E731
    try:
        results = {}
        before = stats()["requests"]
        wall, cpu, out = run([sys.executable, "-c", HTTPX_CLIENT, url + "/v1/chat/completions",
                              str(a.concurrency), str(a.duration), str(a.tokens)])
        n = stats()["requests"] - before
        results["httpx+asyncio"] = (n, wall, cpu, out.strip().splitlines()[-1] if out.strip() else "")
        if a.locust:
            with tempfile.TemporaryDirectory() as tmp:
                lf = Path(tmp, "locustfile.py")
                lf.write_text(LOCUSTFILE)
                before = stats()["requests"]
                wall, cpu, out = run([a.locust, "-f", str(lf), "--headless", "-u", str(a.concurrency), "-r", str(a.concurrency),
                                      "-t", f"{int(a.duration)}s", "--host", url, "--only-summary", "--loglevel", "WARNING"],
                                     env=dict(os.environ, GEN_TOKENS=str(a.tokens)))
                n = stats()["requests"] - before
                results["locust FastHttpUser"] = (n, wall, cpu, "")
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"stub: TTFT {a.ttft_ms} ms, ITL {a.itl_ms} ms, {a.tokens} tokens; {a.concurrency} concurrent streams, {a.duration:g} s")
        print(f"{'generator':22} {'requests':>9} {'req/s':>8} {'CPU s':>7} {'CPU ms/req':>11} {'cores used':>10}")
        for name, (n, wall, cpu, note) in results.items():
            print(f"{name:22} {n:9d} {n / wall:8.1f} {cpu:7.2f} {1000 * cpu / max(n, 1):11.2f} {cpu / wall:10.2f}  {note}")
    finally:
        stub.kill()
        stub.wait()


if __name__ == "__main__":
    main()

"""The rendered nginx gateway, run for real on 127.0.0.1 in front of stub vLLM replicas
(tests/gateway/support.Gateway: the rendered config, njs script and key file):
least_conn evens out work, tokens stream through unbuffered, a killed replica is routed
around without failing requests that had not started, and a revived one gets traffic again."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time

import httpx
import pytest

from components.small.project import FAIL_TIMEOUT_S
from tests.gateway.support import Gateway
from tests.support.processes import start_stubs
from tests.support.stacks import small_stack

API_KEY = "test-key-not-a-secret"


AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def gateway(tmp_path):
    stubs = start_stubs(3, ttft_ms=10, itl_ms=4, api_key=API_KEY)
    gw = Gateway(tmp_path, {"llama-8b": [s.address for s in stubs]}, keys=[API_KEY], prober=False,
                 worker_processes="auto").start()
    yield {"url": gw.url, "stubs": stubs, "nginx": gw.nginx, "status_port": gw.status_port}
    gw.stop()
    for s in stubs:
        s.kill()


async def _stream(client: httpx.AsyncClient, max_tokens: int) -> dict:
    """One streamed chat completion; records when the first and last chunk arrived."""
    start = time.monotonic()
    result = {"tokens": 0, "headers": None, "first": None, "last": None, "error": None, "served_by": None}
    try:
        async with client.stream("POST", "/v1/chat/completions", headers=AUTH, json={
            "model": "meta-llama/Llama-3.1-8B-Instruct", "stream": True, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "hi"}],
        }) as resp:
            if resp.status_code != 200:
                result["error"] = f"HTTP {resp.status_code}"
                return result
            # The response has started: from here on no proxy may replay the request.
            result["headers"] = time.monotonic() - start
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                now = time.monotonic() - start
                result["first"] = result["first"] if result["first"] is not None else now
                result["last"] = now
                result["tokens"] += 1
                result["served_by"] = json.loads(line[6:])["served_by"]
        if result["tokens"] != max_tokens:
            result["error"] = f"truncated: {result['tokens']}/{max_tokens}"
    except httpx.HTTPError as e:
        result["error"] = repr(e)
    return result


async def _load(url: str, lengths: list[int], concurrency: int, until: float | None = None) -> list[dict]:
    queue = list(lengths)
    results: list[dict] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker():
            while queue and (until is None or time.monotonic() < until):
                results.append(await _stream(client, queue.pop()))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_health_and_auth_pass_through(gateway):
    assert httpx.get(f"http://127.0.0.1:{gateway['status_port']}/gateway/health").status_code == 200
    # The gateway checks the key itself (and forwards it: the replicas check it too).
    assert httpx.get(f"{gateway['url']}/v1/models").status_code == 401
    models = httpx.get(f"{gateway['url']}/v1/models", headers=AUTH)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "stub-model"
    # The per-model path prefixes are gone: everything goes through the allowlist.
    assert httpx.get(f"{gateway['url']}/llama-8b/v1/models", headers=AUTH).status_code == 404


def test_least_conn_evens_work_across_replicas(gateway):
    rng = random.Random(7)
    # Very uneven request lengths: 5..200 tokens, most short, some long.
    lengths = [rng.choice([5, 10, 20, 200]) if i % 3 else rng.randint(5, 200) for i in range(480)]
    results = asyncio.run(_load(gateway["url"], lengths, concurrency=24))
    assert [r["error"] for r in results if r["error"]] == []
    stats = [s.stats() for s in gateway["stubs"]]
    tokens = [s["tokens"] for s in stats]
    busy = [s["busy_s"] for s in stats]
    requests = [s["requests"] for s in stats]
    assert sum(tokens) == sum(lengths)
    token_excess = max(tokens) / statistics.mean(tokens) - 1
    busy_excess = max(busy) / statistics.mean(busy) - 1
    print(f"\nrequests={requests} tokens={tokens} busy_s={busy} "
          f"busiest vs mean: tokens +{token_excess:.1%}, busy time +{busy_excess:.1%}")
    assert token_excess <= 0.05, f"busiest replica did {token_excess:.1%} more tokens than the mean: {tokens}"
    assert busy_excess <= 0.05, f"busiest replica was busy {busy_excess:.1%} longer than the mean: {busy}"


def test_tokens_stream_as_they_are_produced(gateway):
    # 200 tokens at 4 ms each after a 10 ms first token: about 0.8 s of generation.
    result = asyncio.run(_load(gateway["url"], [200], concurrency=1))[0]
    assert result["error"] is None and result["tokens"] == 200
    print(f"\nfirst chunk {result['first'] * 1000:.0f} ms, last chunk {result['last'] * 1000:.0f} ms")
    assert result["last"] >= 0.75
    assert result["first"] < result["last"] / 4, "the first chunk waited for the rest: nginx is buffering"


def _upstream_times(lines: list[str], address: str) -> list[float]:
    """Times (epoch s) of log lines whose tried-upstream list includes `address`."""
    out = []
    for line in lines:
        upstreams = line.split("upstream=", 1)[1].split(" upstream_status=")[0]
        if address in upstreams:
            out.append(float(line.rsplit("msec=", 1)[1]))
    return out


def test_killed_replica_is_routed_around_and_rejoins(gateway):
    stubs, nginx = gateway["stubs"], gateway["nginx"]
    victim = stubs[0]
    rng = random.Random(11)

    async def scenario():
        t0 = time.monotonic()
        lengths = [rng.randint(20, 80) for _ in range(100000)]
        load = asyncio.create_task(_load(gateway["url"], lengths, concurrency=12, until=t0 + 14))
        await asyncio.sleep(3)
        kill_at = time.time()
        victim.kill()
        await asyncio.sleep(6)
        victim.start()  # same port
        revive_at = time.time()
        return kill_at, revive_at, await load

    kill_at, revive_at, results = asyncio.run(scenario())
    before_stream = [r for r in results if r["error"] and r["headers"] is None]
    mid_stream = [r for r in results if r["error"] and r["headers"] is not None]
    print(f"\n{len(results)} requests; failed mid-stream on the killed replica: {len(mid_stream)}; "
          f"failed before streaming: {len(before_stream)}")
    # Requests that had not started streaming are retried on another replica: none fail.
    assert before_stream == []
    # Only streams the victim was serving when it died may break (at most its in-flight share).
    assert all(r["served_by"] in (victim.name, None) for r in mid_stream)
    assert len(mid_stream) <= 12

    log = nginx.access_log()
    tried_dead = [t for t in _upstream_times(log, victim.address) if kill_at <= t < revive_at]
    after_3s = [t for t in tried_dead if t > kill_at + FAIL_TIMEOUT_S]
    requests_after_3s = [line for line in log if kill_at + FAIL_TIMEOUT_S < float(line.rsplit("msec=", 1)[1]) < revive_at]
    print(f"requests tried on the dead replica: {len(tried_dead)} "
          f"({len(after_3s)} of {len(requests_after_3s)} after {FAIL_TIMEOUT_S} s)")
    # Within 3 s nginx stops sending traffic there; afterwards only the one probe per
    # fail_timeout that passive health checking makes (and that request is retried).
    window = revive_at - kill_at - FAIL_TIMEOUT_S
    assert len(after_3s) <= window / FAIL_TIMEOUT_S + 1
    assert len(requests_after_3s) >= 20, "too little load after the kill to show anything"

    revived = victim.stats()
    served_after = [t for t in _upstream_times(log, victim.address) if t >= revive_at]
    print(f"revived replica served {revived['requests']} requests, the first "
          f"{(min(served_after) - revive_at) if served_after else float('nan'):.1f} s after it came back")
    assert revived["requests"] > 10
    assert served_after and min(served_after) - revive_at <= FAIL_TIMEOUT_S + 1

"""Load for the gateway fault scenarios (tests/gateway/test_faults_live.py and
benchmarks/gateway_faults.py): streamed or whole chat completions, each recording whether its
response had started (status and headers received) before anything failed, who served it and
whether its tokens arrived exactly once and in order."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Optional

import httpx

from tests.gateway.support import AUTH, MODEL


@dataclass
class Result:
    id: int
    stream: bool
    start: float  # time.time() when sent
    status: Optional[int] = None
    started: bool = False  # a 200 and its headers arrived: from here on nothing may be replayed
    tokens: list[str] = field(default_factory=list)
    served_by: set = field(default_factory=set)
    error: Optional[str] = None
    latency: Optional[float] = None  # s, to the last byte

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failed_before_first_byte(self) -> bool:
        return self.error is not None and not self.started


async def one(client: httpx.AsyncClient, rid: int, stream: bool, max_tokens: int) -> Result:
    res = Result(rid, stream, time.time())
    t0 = time.monotonic()
    body = {"model": MODEL, "stream": stream, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"request {rid}"}]}
    try:
        async with client.stream("POST", "/v1/chat/completions", headers=AUTH, json=body) as resp:
            res.status = resp.status_code
            if resp.status_code != 200:
                await resp.aread()
                res.error = f"HTTP {resp.status_code}"
                return res
            res.started = True
            if stream:
                async for line in resp.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        event = json.loads(line[6:])
                        res.served_by.add(event.get("served_by"))
                        for choice in event.get("choices", []):
                            res.tokens.append(choice["delta"]["content"].strip())
            else:
                event = json.loads(await resp.aread())
                res.served_by.add(event.get("served_by"))
                res.tokens = event["choices"][0]["message"]["content"].split()
        if res.tokens != [f"t{i}" for i in range(max_tokens)]:
            res.error = f"tokens: {len(res.tokens)}/{max_tokens} or out of order"
    except httpx.HTTPError as e:
        res.error = repr(e)
    res.latency = time.monotonic() - t0
    return res


async def run(url: str, concurrency: int, duration_s: float, max_tokens: int, stream_share: float = 1.0,
              events: Optional[list] = None, timeout: float = 60) -> list[Result]:
    """`concurrency` clients, each sending one request after the other for `duration_s`;
    `events`: (seconds after start, callable) run in a thread at that time."""
    results: list[Result] = []
    counter = iter(range(10**9))
    deadline = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        async def worker(w: int):
            while time.monotonic() < deadline:
                rid = next(counter)
                stream = (rid % 100) < stream_share * 100
                results.append(await one(client, rid, stream, max_tokens))

        async def fire():
            start = time.monotonic()
            for at, action in sorted(events or [], key=lambda e: e[0]):
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                await asyncio.to_thread(action)

        await asyncio.gather(fire(), *(worker(w) for w in range(concurrency)))
    return results


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def access_log(lines: list[str]) -> list[dict]:
    """nginx's tierscale log format: each request's start, upstreams tried and statuses."""
    out = []
    for line in lines:
        try:
            upstreams = line.split("upstream=", 1)[1].split(" upstream_status=")[0]
            statuses = line.split("upstream_status=", 1)[1].split(" rt=")[0]
            rt = float(line.split(" rt=", 1)[1].split()[0])
            msec = float(line.rsplit("msec=", 1)[1])
        except (IndexError, ValueError):
            continue
        request = line.split('"', 2)[1]
        out.append({"request": request, "upstreams": [u.strip() for u in upstreams.replace(":", " ", 0).split(",")],
                    "statuses": [s.strip() for s in statuses.split(",")], "start": msec - rt, "end": msec})
    return out

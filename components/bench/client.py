"""The streaming client and the load loop, on Locust's HTTP client and gevent.

One request is a streamed chat completion (`stream: true`, `stream_options: {include_usage:
true}`) read line by line as it arrives: TTFT is stamped at the first chunk whose delta carries
content (not at the response headers, not at a role-only chunk), each later content chunk adds
one inter-chunk gap (ITL), E2E ends at `[DONE]` or end of stream. Output tokens come from the
server's `usage` when it sends it, else the number of content chunks.

Importing this module imports Locust, which monkey-patches the standard library for gevent
(Locust's supported mode). `tierscale bench` imports it only after its options are checked.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import locust  # noqa: F401  (monkey-patches for gevent first)
import gevent
import gevent.event
import gevent.pool
from locust.contrib.fasthttp import FastHttpSession
from locust.event import EventHook

from components.bench.workload import Dataset, Request, gaps


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # scheme://host[:port][/prefix], without /v1
    model: str
    api_key: Optional[str] = None
    insecure: bool = False
    timeout_s: float = 300.0

    @staticmethod
    def normalize(url: str) -> str:
        url = url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


@dataclass
class Outcome:
    start: float  # seconds after the measured phase began
    ok: bool
    error: Optional[str] = None
    ttft: Optional[float] = None  # seconds
    e2e: Optional[float] = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: Optional[int] = None
    usage_reported: bool = False

    @property
    def tpot(self) -> Optional[float]:
        """(E2E - TTFT) / (tokens - 1); None for a single token (no decode step to time)."""
        if not self.ok or self.output_tokens < 2 or self.ttft is None:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)


class Client:
    def __init__(self, endpoint: Endpoint, pool_size: int):
        self.endpoint = endpoint
        self.session = FastHttpSession(
            endpoint.base_url, request_event=EventHook(), user=None, insecure=endpoint.insecure,
            concurrency=max(1, pool_size), network_timeout=endpoint.timeout_s, connection_timeout=min(30.0, endpoint.timeout_s),
        )
        self.headers = {"Accept-Encoding": "identity", "Accept": "text/event-stream"}
        if endpoint.api_key:
            self.headers["Authorization"] = f"Bearer {endpoint.api_key}"

    def send(self, request: Request, t0: float) -> Outcome:
        body = {
            "model": self.endpoint.model,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_tokens": request.output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start = time.perf_counter()
        outcome = Outcome(start=start - t0, ok=False)
        try:
            response = self.session.request("POST", "/v1/chat/completions", json=body, headers=self.headers, stream=True)
            status = response.status_code
            if status != 200:
                detail = getattr(response, "error", None)
                if status:
                    try:
                        text = (response.text or "").strip().replace("\n", " ")
                    except Exception:  # noqa: BLE001 - the body of a failed response is best effort
                        text = ""
                    detail = f"HTTP {status}" + (f": {text[:200]}" if text else "")
                else:
                    detail = f"connection: {type(detail).__name__}: {detail}"
                outcome.error = str(detail)
                return outcome
            raw = response._response
            last = None
            chunks = 0
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                event = json.loads(data)
                if "error" in event and not event.get("choices"):
                    outcome.error = f"stream error: {json.dumps(event['error'])[:200]}"
                    return outcome
                usage = event.get("usage")
                if usage and usage.get("completion_tokens") is not None:
                    outcome.output_tokens = int(usage["completion_tokens"])
                    outcome.prompt_tokens = usage.get("prompt_tokens")
                    outcome.usage_reported = True
                for choice in event.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("reasoning_content") or choice.get("text"):
                        now = time.perf_counter()
                        if last is None:
                            outcome.ttft = now - start
                        else:
                            outcome.itl.append(now - last)
                        last = now
                        chunks += 1
                        break
            outcome.e2e = time.perf_counter() - start
            if not outcome.usage_reported:
                outcome.output_tokens = chunks
            if outcome.ttft is None:
                outcome.error = "stream ended without a content token"
                return outcome
            outcome.ok = True
            return outcome
        except gevent.GreenletExit:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of one request is that request's error
            outcome.error = f"{type(e).__name__}: {e}"[:300]
            return outcome


@dataclass
class Progress:
    started: float
    sent: int = 0
    done: int = 0
    errors: int = 0
    in_flight: int = 0
    phase: str = "warm-up"
    planned: Optional[int] = None
    duration: Optional[float] = None
    last_error: Optional[str] = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class RunResult:
    outcomes: list[Outcome]
    wall_s: float
    stopped: Optional[str] = None  # why the run was cut short (stop condition), else None
    warmup_errors: int = 0


def run(client: Client, dataset: Dataset, *, rate: Optional[float], burstiness: float, concurrency: Optional[int],
        duration: Optional[float], requests: Optional[int], warmup: int = 0, stop_error_rate: Optional[float] = None,
        stop_min_requests: int = 20, seed: int = 0,
        on_progress: Optional[Callable[[Progress], None]] = None, tick_s: float = 0.25) -> RunResult:
    """Warm up, then send until `duration` seconds or `requests` requests (whichever is set; a trace
    replay also ends with the trace). With `rate`, arrivals are gamma/Poisson at that rate, capped at
    `concurrency` in flight when both are set; with only `concurrency`, that many closed loops; a timed
    dataset (trace) sends at its own times. In-flight requests finish before the result is returned,
    unless `stop_error_rate` is exceeded (after `stop_min_requests` answers): then sending stops and the
    requests in flight are abandoned and not counted."""
    source = iter(dataset)
    progress = Progress(started=time.perf_counter(), planned=requests, duration=duration)
    ticker = gevent.spawn(_tick, progress, on_progress, tick_s) if on_progress else None
    try:
        warmup_errors = _warmup(client, source, warmup, min(warmup, concurrency or 8), progress) if warmup else 0
        if dataset.timed and warmup:
            source = iter(dataset)  # a replay starts at its own beginning after the warm-up
        return _measure(client, dataset, source, rate=rate, burstiness=burstiness, concurrency=concurrency,
                        duration=duration, requests=requests, stop_error_rate=stop_error_rate,
                        stop_min_requests=stop_min_requests, seed=seed, progress=progress, warmup_errors=warmup_errors)
    finally:
        if ticker:
            ticker.kill()
            on_progress(progress)


def _tick(progress: Progress, on_progress, tick_s: float) -> None:
    while True:
        on_progress(progress)
        gevent.sleep(tick_s)


def _warmup(client: Client, source, n: int, width: int, progress: Progress) -> int:
    t0 = time.perf_counter()
    batch = list(itertools.islice(source, n))
    pool = gevent.pool.Pool(max(1, width))
    results = pool.map(lambda r: client.send(r, t0), batch)
    return sum(1 for o in results if not o.ok)


def _measure(client, dataset, source, *, rate, burstiness, concurrency, duration, requests, stop_error_rate,
             stop_min_requests, seed, progress: Progress, warmup_errors: int) -> RunResult:
    outcomes: list[Outcome] = []
    stop = gevent.event.Event()
    reason: list[str] = []
    t0 = time.perf_counter()
    deadline = t0 + duration if duration else math.inf
    progress.phase, progress.started = "measuring", t0
    budget = itertools.count() if requests is None else iter(range(requests))

    def one(request: Request) -> None:
        progress.in_flight += 1
        try:
            outcome = client.send(request, t0)
        finally:
            progress.in_flight -= 1
        if stop.is_set() and reason:
            return  # answered after the stop condition fired: not part of the run
        outcomes.append(outcome)
        progress.done += 1
        if not outcome.ok:
            progress.errors += 1
            progress.last_error = outcome.error
        if (stop_error_rate is not None and progress.done >= stop_min_requests
                and progress.errors / progress.done > stop_error_rate and not stop.is_set()):
            reason.append(f"error rate {progress.errors / progress.done:.1%} > {stop_error_rate:.1%} "
                          f"after {progress.done} requests")
            stop.set()

    def next_request() -> Optional[Request]:
        if stop.is_set() or time.perf_counter() >= deadline or next(budget, None) is None:
            return None
        request = next(source, None)
        if request is not None:
            progress.sent += 1
        return request

    workers = gevent.pool.Group()
    if dataset.timed or rate is not None:
        limit = gevent.pool.Pool(concurrency) if concurrency else workers
        arrival_gaps = gaps(rate, burstiness, random.Random(seed)) if rate is not None and not dataset.timed else None
        next_at = t0
        while True:
            request = next_request()
            if request is None:
                break
            next_at = t0 + request.at if dataset.timed else next_at + next(arrival_gaps)
            wait = min(next_at, deadline) - time.perf_counter()
            if wait > 0 and stop.wait(wait):
                break
            if time.perf_counter() >= deadline:
                progress.sent -= 1
                break
            if limit is not workers:
                limit.wait_available()
                if stop.is_set():
                    break
            g = limit.spawn(one, request)
            if limit is not workers:
                workers.add(g)
    else:
        def loop() -> None:
            while True:
                request = next_request()
                if request is None:
                    return
                one(request)
        for _ in range(concurrency or 1):
            workers.spawn(loop)
    # Wait for what is in flight, or for the stop condition (then abandon it).
    waiter, stopper = gevent.spawn(workers.join), gevent.spawn(stop.wait)
    gevent.wait([waiter, stopper], count=1)
    if stop.is_set() and reason:
        workers.kill(block=True, timeout=5)
    waiter.kill()
    stopper.kill()
    progress.phase = "stopped" if reason else "done"
    return RunResult(outcomes, time.perf_counter() - t0, reason[0] if reason else None, warmup_errors)

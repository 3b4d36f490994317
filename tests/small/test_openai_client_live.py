"""A standard OpenAI client with one base_url, against the rendered nginx gateway run for real
on 127.0.0.1 (njs model router) in front of stub replicas of two models: both models answer,
streams arrive token by token, /v1/models lists both, an unknown model gets an OpenAI-style
404 naming the served models, the gateway checks the key, and the per-model path prefixes
are gone."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.gateway.support import Gateway
from tests.support.processes import Nginx, free_port, start_stubs
from tests.support.stacks import small_stack

KEY = "openai-client-test-key"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen2.5-14B-Instruct-AWQ"
TWO_MODELS = [
    {"id": LLAMA, "name": "llama-8b", "replicas": 2},
    {"id": "Qwen/Qwen2.5-14B-Instruct-AWQ", "name": "qwen-14b", "quantization": "awq", "replicas": 1},
]


def run_gateway(stack, servers: dict[str, list[str]], workdir) -> tuple[Nginx, str, int]:
    """The stack's rendered nginx.conf, model_router.js and key file on 127.0.0.1 (as the
    Compose project mounts them), started; returns nginx, the base URL and the status port."""
    gw = Gateway(workdir, servers, stack=stack, keys=[KEY], prober=False, worker_processes="auto").start()
    return gw.nginx, gw.url, gw.status_port


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    work = tmp_path_factory.mktemp("openai-gateway")
    llama = start_stubs(2, api_key=KEY, model=LLAMA, ttft_ms=10, itl_ms=4)
    qwen = start_stubs(1, api_key=KEY, model=QWEN, ttft_ms=10, itl_ms=4)
    stack = small_stack(models=TWO_MODELS)
    nginx, url, _ = run_gateway(stack, {"llama-8b": [s.address for s in llama], "qwen-14b": [s.address for s in qwen]},
                                work)
    try:
        yield {"url": url, "llama": llama, "qwen": qwen, "nginx": nginx}
    finally:
        nginx.stop()
        for s in llama + qwen:
            s.kill()


@pytest.fixture
def client(gateway):
    with openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key=KEY, max_retries=0, timeout=30) as c:
        yield c


def _chat(client, model: str, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=5, **kw)


def test_both_models_answer_on_one_base_url(gateway, client):
    def counts():
        return {model: [s.stats()["requests"] for s in gateway[model]] for model in ("llama", "qwen")}
    before = counts()
    for _ in range(4):
        assert _chat(client, LLAMA).model == LLAMA
        qwen = _chat(client, QWEN)
        assert qwen.model == QWEN and qwen.choices[0].message.content.startswith("t0 t1")
    after = counts()
    served = {m: [a - b for a, b in zip(after[m], before[m])] for m in after}
    print(f"\nrequests per replica: {served}")
    # Each model's requests reach only its own replicas, and least_conn still spreads them.
    assert served["qwen"] == [4] and sum(served["llama"]) == 4 and min(served["llama"]) >= 1


def test_streaming_through_the_router(gateway, client):
    start = time.monotonic()
    arrivals, text = [], ""
    stream = client.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=100, stream=True)
    for chunk in stream:
        assert chunk.model == QWEN
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - start)
            text += chunk.choices[0].delta.content
    print(f"\n{len(arrivals)} chunks; first at {arrivals[0] * 1000:.0f} ms, last at {arrivals[-1] * 1000:.0f} ms")
    assert len(arrivals) == 100 and text.startswith("t0 t1 ")
    # 100 tokens 4 ms apart: streamed, they arrive over ~0.4 s, the first long before the last.
    assert arrivals[-1] >= 0.35 and arrivals[0] < arrivals[-1] / 4


def test_models_lists_every_served_model(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [LLAMA, QWEN]
    assert all(m.object == "model" and m.owned_by == "vllm" for m in models.data)


def test_unknown_model_gets_an_openai_404_naming_the_served_models(client):
    with pytest.raises(openai.NotFoundError) as caught:
        _chat(client, "gpt-4o")
    error = caught.value
    assert error.status_code == 404
    assert error.body["code"] == "model_not_found" and error.body["param"] == "model"
    assert error.body["type"] == "invalid_request_error"
    assert "`gpt-4o` does not exist" in error.body["message"]
    assert LLAMA in error.body["message"] and QWEN in error.body["message"]


def test_the_key_is_checked_by_the_gateway(gateway):
    with openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key="wrong", max_retries=0) as bad:
        for call in (lambda: _chat(bad, QWEN), lambda: bad.models.list(), lambda: _chat(bad, "gpt-4o")):
            # Even an unknown model: a client without the key learns nothing about what is served.
            with pytest.raises(openai.AuthenticationError):
                call()


def test_a_body_without_a_model_goes_to_the_first_model(gateway):
    resp = httpx.post(f"{gateway['url']}/v1/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"prompt": "hi", "max_tokens": 2}, timeout=30)
    assert resp.status_code == 200 and resp.json()["model"] == LLAMA


def test_path_prefixes_are_gone(gateway):
    """/<model>/... used to reach a model's replicas on any path; only the allowlist is served now."""
    with openai.OpenAI(base_url=f"{gateway['url']}/qwen-14b/v1", api_key=KEY, max_retries=0) as qwen_only:
        with pytest.raises(openai.NotFoundError):
            qwen_only.models.list()


def test_a_model_with_every_replica_down_is_still_listed_and_fails_cleanly(tmp_path):
    llama = start_stubs(1, api_key=KEY, model=LLAMA)
    dead = free_port()  # nothing listens: the qwen replica is down
    stack = small_stack(models=TWO_MODELS)
    nginx, url, _ = run_gateway(stack, {"llama-8b": [s.address for s in llama], "qwen-14b": [f"127.0.0.1:{dead}"]},
                                tmp_path)
    try:
        with openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0) as c:
            listed = {m.id: m for m in c.models.list().data}
            assert list(listed) == [LLAMA, QWEN]
            # From the rendered card, in vLLM's shape.
            assert listed[QWEN].model_extra["root"] == QWEN and listed[QWEN].model_extra["max_model_len"] > 0
            assert _chat(c, LLAMA).model == LLAMA
            with pytest.raises(openai.InternalServerError) as caught:
                _chat(c, QWEN)
            assert caught.value.status_code == 502
    finally:
        nginx.stop()
        for s in llama:
            s.kill()

"""The rendered LiteLLM gateway config, run for real: the pinned LiteLLM proxy (its own
virtualenv, .venv-litellm) with Redis for routing state, in front of stub vLLM replicas.
Aliases resolve, load spreads over replicas, streams pass through, the key is enforced, and
when every replica of a model is gone requests fall back to the fallback model."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import httpx
import pytest
import yaml

from components import paths
from components.small.project import litellm_config
from tests.support.processes import free_port, start_stubs, wait_http
from tests.support.stacks import small_stack

LITELLM = paths.REPO_ROOT / ".venv-litellm" / "bin" / "litellm"
KEY = "litellm-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    assert LITELLM.exists(), f"{LITELLM} missing: `make setup` creates .venv-litellm"
    work = tmp_path_factory.mktemp("litellm")
    llama = start_stubs(2, api_key=KEY, model=LLAMA, itl_ms=5)
    qwen = start_stubs(1, api_key=KEY, model="Qwen/Qwen2.5-14B-Instruct-AWQ", itl_ms=5)
    redis_port, port = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no"], stdout=subprocess.DEVNULL)
    stack = small_stack(
        models=[{"id": LLAMA, "name": "llama-8b", "replicas": 2},
                {"id": "Qwen/Qwen2.5-14B-Instruct-AWQ", "name": "qwen-14b", "quantization": "awq", "replicas": 1}],
        gateway={"kind": "litellm", "fallbackModel": "qwen-14b", "aliases": {"gpt-4o-mini": "llama-8b"}})
    config = litellm_config(stack, {"llama-8b": [s.address for s in llama], "qwen-14b": [s.address for s in qwen]},
                            redis=("127.0.0.1", redis_port))
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # Offline: the bundled model-cost map instead of GitHub's, and no Hugging Face tokenizer
    # download (LiteLLM counts streamed tokens with a llama tokenizer fetched from the Hub).
    env = dict(os.environ, VLLM_API_KEY=KEY, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
               HF_HUB_OFFLINE="1")
    proxy = subprocess.Popen([str(LITELLM), "--config", str(work / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
                             env=env, stdout=open(work / "litellm.log", "w"), stderr=subprocess.STDOUT, cwd=work)
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
        yield {"url": f"http://127.0.0.1:{port}", "llama": llama, "qwen": qwen}
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        redis.terminate()
        for s in llama + qwen:
            s.kill()


def _chat(url: str, model: str, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers=AUTH, timeout=60, json={
        "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra})


def test_key_is_enforced(gateway):
    resp = httpx.post(f"{gateway['url']}/v1/chat/completions", timeout=30,
                      json={"model": LLAMA, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 401


def test_openai_alias_reaches_the_model_and_load_spreads(gateway):
    async def load():
        gate = asyncio.Semaphore(6)  # steady concurrency, so in-flight counts reach Redis between picks
        async with httpx.AsyncClient(timeout=60, headers=AUTH) as client:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 40}

            async def one():
                async with gate:
                    return await client.post(f"{gateway['url']}/v1/chat/completions", json=body)
            return await asyncio.gather(*(one() for _ in range(36)))
    responses = asyncio.run(load())
    assert [r.status_code for r in responses] == [200] * 36
    assert responses[0].json()["choices"][0]["message"]["content"].startswith("t0 t1")
    served = [s.stats()["requests"] for s in gateway["llama"]]
    print(f"\nrequests per llama replica through LiteLLM: {served}")
    assert sum(served) == 36 and min(served) >= 4, "least-busy should use both replicas"
    assert gateway["qwen"][0].stats()["requests"] == 0


def test_streams_pass_through(gateway):
    chunks = []
    start = time.monotonic()
    with httpx.stream("POST", f"{gateway['url']}/v1/chat/completions", headers=AUTH, timeout=60, json={
            "model": LLAMA, "stream": True, "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append((time.monotonic(), line))
    spread = chunks[-1][0] - chunks[0][0]
    print(f"\n{len(chunks)} chunks; first at {(chunks[0][0] - start) * 1000:.0f} ms, last at {(chunks[-1][0] - start) * 1000:.0f} ms")
    assert len(chunks) >= 200
    # 200 tokens at 5 ms each: streamed, the chunks arrive over ~1 s, not in one burst (a proxy
    # that buffered would deliver them together; a busy CI machine delays but does not compress
    # them below a quarter of that).
    assert spread >= 0.25


def test_falls_back_when_the_model_is_down(gateway):
    before = gateway["qwen"][0].stats()["requests"]
    for stub in gateway["llama"]:
        stub.kill()
    resp = _chat(gateway["url"], LLAMA)
    assert resp.status_code == 200, resp.text
    assert gateway["qwen"][0].stats()["requests"] > before

"""The njs router honours the prober's health file (written by hand here, so the routing is
tested on its own): listed replicas get no new requests, any combination on a small model,
and a model whose replicas are all listed is still served (passive health decides)."""

from __future__ import annotations

import httpx
import pytest

from components.serving import model_router
from tests.gateway.support import AUTH, MODEL, Gateway, start_replicas

BODY = {"model": MODEL, "prompt": "x", "max_tokens": 1}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    replicas = start_replicas(4, ttft_ms=1, itl_ms=1)
    gateway = Gateway(tmp_path_factory.mktemp("health-routing"), {"llama-8b": [r.address for r in replicas]},
                      prober=False, health=True).start()
    try:
        yield gateway, replicas
    finally:
        gateway.stop()
        for r in replicas:
            r.kill()


def served(gateway, replicas, n=24) -> list[int]:
    before = [r.stats()["requests"] for r in replicas]
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as c:
        for _ in range(n):
            assert c.post("/v1/completions", json=BODY).status_code == 200
    return [r.stats()["requests"] - b for r, b in zip(replicas, before)]


@pytest.mark.parametrize("down", [[], [0], [2], [1, 3], [0, 1, 2], [0, 1, 2, 3]])
def test_listed_replicas_get_no_new_requests(gw, down):
    gateway, replicas = gw
    gateway.health_file.write_text("".join(f"vllm_llama_8b {replicas[i].address}\n" for i in down)
                                   + "vllm_other 127.0.0.1:1\n")
    try:
        counts = served(gateway, replicas)
    finally:
        gateway.health_file.write_text("")
    print(f"\ndown {down}: requests per replica {counts}")
    if len(down) == len(replicas):
        assert all(c > 0 for c in counts)  # nothing to route around: the full upstream
    else:
        assert all(counts[i] == 0 for i in down)
        assert all(counts[i] > 0 for i in range(len(replicas)) if i not in down)


def test_model_list_lookups_route_around_too(gw):
    gateway, replicas = gw
    gateway.health_file.write_text(f"vllm_llama_8b {replicas[0].address}\n")
    try:
        before = len(replicas[0].requests())
        for _ in range(8):
            assert httpx.get(gateway.url + "/v1/models", headers=AUTH).status_code == 200
        assert [e for e in replicas[0].requests()[before:] if e["target"] == "/v1/models"] == []
    finally:
        gateway.health_file.write_text("")


def test_variants_cover_every_subset_up_to_four_replicas_then_single_exclusions():
    assert [out for _, out in model_router.variants("u", 1)] == []
    assert len(model_router.variants("u", 4)) == 14  # 4 + 6 + 4 proper subsets out
    assert [out for _, out in model_router.variants("u", 6)] == [[i] for i in range(6)]


def test_auth_on_without_a_key_file_is_refused_and_keys_are_checked():
    from tests.support.stacks import small_stack
    with pytest.raises(ValueError, match="auth_file"):
        model_router.nginx_conf(small_stack(), "x", {"llama-8b": ["a:1", "b:1", "c:1"]}, role="t", listen="1",
                                status_listen="2", js_path="j", pid_path="p", error_log="e", access_log="a",
                                temp_dir="t", tls={"enabled": False}, tls_dir="")
    with pytest.raises(ValueError, match="whitespace"):
        model_router.auth_include(["two words"])
    assert '"";' in model_router.auth_include([])  # no key accepted

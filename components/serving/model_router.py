"""The nginx model router every tier with an nginx gateway runs: one base URL for every model.

One source for both tiers: `templates/gateway/nginx.conf.j2` (the config) and
`templates/gateway/model_router.js` (njs, shipped verbatim). The Compose gateway renders it
with the replicas as upstream servers; the Kubernetes model router renders it with each
model's Service. A request names its model in the body (`"model": "<served name>"`), as the
OpenAI API does; njs reads it and hands the request to that model's upstream{} block, so
least_conn, passive health, keepalive and retries stay nginx's own.
"""

from __future__ import annotations

import json

from components import paths, templating
from components.spec import ResolvedStack

# Where the njs module is on Debian 12 (libnginx-mod-http-js) and in nginx:1.27.5-alpine (the
# nginx.org package nginx-module-njs installs into /usr/lib/nginx/modules; the image links
# /etc/nginx/modules to it).
JS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
JS_FILE = "model_router.js"
JS_TEMPLATE = paths.TEMPLATES_DIR / "gateway" / JS_FILE
# Passive health: after MAX_FAILS failed attempts within FAIL_TIMEOUT the replica is taken
# out of rotation for FAIL_TIMEOUT, then tried again.
MAX_FAILS = 2
FAIL_TIMEOUT_S = 3


def router_js() -> str:
    return JS_TEMPLATE.read_text()


def upstream_name(model_name: str) -> str:
    return f"vllm_{model_name.replace('-', '_')}"


def routes(stack: ResolvedStack) -> dict:
    """Served model name -> upstream, and the default (first) model for a body without one."""
    return {"default": upstream_name(stack.models[0].name),
            "models": {m.served_model_name: upstream_name(m.name) for m in stack.models}}


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


def nginx_conf(stack: ResolvedStack, name: str, servers_by_model: dict[str, list[str]], *, role: str,
               listen: str, status_listen: str, js_path: str, pid_path: str, error_log: str, access_log: str,
               temp_dir: str, tls: object, tls_dir: str, worker_processes: str = "auto") -> str:
    return templating.render(
        "gateway/nginx.conf.j2",
        stack_name=name,
        role=role,
        models=[{"name": m.name, "upstream": upstream_name(m.name), "servers": servers_by_model[m.name]}
                for m in stack.models],
        routes=_config_string(routes(stack)),
        cards=_config_string(model_cards(stack)),
        gateway=stack.spec.gateway,
        listen=listen,
        status_listen=status_listen,
        max_fails=MAX_FAILS,
        fail_timeout_s=FAIL_TIMEOUT_S,
        worker_processes=worker_processes,
        pid_path=pid_path,
        error_log=error_log,
        access_log=access_log,
        temp_dir=temp_dir,
        js_module=JS_MODULE,
        js_path=js_path,
        tls=tls,
        tls_dir=tls_dir,
    )

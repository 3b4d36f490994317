"""The model router: one base URL for every model on Kubernetes.

The Ingress / HTTPRoute sends every path here (components/medium/network.py: no route reaches
a vLLM Service directly); the router authenticates the request, reads the body's `model` and
proxies to that model's Service, exactly as the Compose gateway does: the same nginx config
and njs script (components/serving/model_router.py, templates/gateway/), with each model's
Service as its upstream. A model with a canary revision (the large tier's `canary`) has both
Services in its upstream, weighted by the canary's share, so ordinary body-routed OpenAI
requests are split.

With KV-aware routing (`platform.routing.inferencePool`, components/medium/inference_pool.py)
a model's upstream is the internal Gateway instead of its Service, and every request the router
proxies for that model carries `X-Gateway-Model-Name: <model name>` (set by the router, so a
client's own header of that name is replaced): the pool HTTPRoute on the internal Gateway
matches it and hands the request to the model's InferencePool, whose endpoint picker chooses the
replica. The router stays the only client entry (it authenticates before any proxying); a
canary's Service stays a direct, weighted upstream beside the Gateway (its pods are not in the
stable model's pool).

Manifests: a ConfigMap (nginx.conf, model_router.js), a Deployment of the pinned nginx image
(it ships njs) that mounts the accepted-key digests from a Secret (AUTH_SECRET, created by
the component: its content derives from the stack's apiKey secret, so it is never in a
ConfigMap or in Git), a Service, a PodDisruptionBudget and the NetworkPolicies that let the
ingress controller reach the router and the router reach the vLLM pods (and nothing else).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional

from components.medium import inference_pool, multinode
from components.medium.names import APP_LABEL, COMPONENT_LABEL, PART_OF, ROLE_LABEL, workload
from components.medium.manifests import RUN_AS_ID, restricted_container_security
from components.medium.options import CANARY_SUFFIX, DEFAULT, ServingOptions
from components.serving import model_router, probes, versions
from components.serving.vllm_args import VLLM_PORT
from components.spec import ResolvedStack

ROUTER_NAME = "tierscale-model-router"
ROUTER_PORT = VLLM_PORT  # clients see the same port whichever way they come in
STATUS_PORT = 8081
REPLICAS = 2
CONFIG_DIR = "/etc/nginx/tierscale"
# The accepted keys' SHA-256 digests (model_router.auth_include), from a Secret, read-only.
AUTH_SECRET = f"{ROUTER_NAME}-auth"
AUTH_KEY = "auth.conf"
AUTH_DIR = "/etc/nginx/tierscale-auth"
AUTH_FILE = f"{AUTH_DIR}/{AUTH_KEY}"
# The pod template annotation carrying the digest of the auth include: a changed key set rolls
# the router pods (nginx reads the include only at start).
AUTH_CHECKSUM_ANNOTATION = "tierscale.dev/auth-sha256"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=Images are pinned by version tag; digests need registry access at render time",
    "checkov.io/skip2": "CKV_K8S_15=IfNotPresent on a pinned tag: a restart never depends on the registry",
}


def labels() -> dict[str, str]:
    return {APP_LABEL: ROUTER_NAME, COMPONENT_LABEL: "model-router", **PART_OF}


def selector() -> dict[str, str]:
    return {APP_LABEL: ROUTER_NAME}


def service_address(model_name: str, ns: str) -> str:
    return f"{workload(model_name)}.{ns}.svc.cluster.local:{VLLM_PORT}"


def upstreams(stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT
              ) -> tuple[dict[str, list[str]], dict[str, list[int]]]:
    """(servers, weights) per model: its Service, and with a router-split canary also the
    canary's Service, weighted stable 100-w : canary w (nginx weighted round robin)."""
    servers: dict[str, list[str]] = {}
    weights: dict[str, list[int]] = {}
    pooled = inference_pool.enabled(stack)
    for m in stack.models:
        servers[m.name] = [inference_pool.gateway_address(stack) if pooled else service_address(m.name, ns)]
        canary = options.canary_for(m.name)
        if canary is not None and options.canary_split == "router":
            servers[m.name].append(service_address(m.name + CANARY_SUFFIX, ns))
            weights[m.name] = [100 - canary.weight, canary.weight]
    return servers, weights


def auth_enabled(stack: ResolvedStack) -> bool:
    return bool(stack.spec.security.api_auth)


def nginx_conf(stack: ResolvedStack, ns: str, servers: dict[str, list[str]] | None = None, *,
               weights: dict[str, list[int]] | None = None, options: ServingOptions = DEFAULT,
               listen: str = str(ROUTER_PORT), status_listen: str = str(STATUS_PORT),
               js_path: str = f"{CONFIG_DIR}/{model_router.JS_FILE}", auth_file: str = AUTH_FILE,
               pid_path: str = "/tmp/nginx.pid", error_log: str = "stderr", access_log: str = "/dev/stdout",
               temp_dir: str = "/tmp") -> str:
    """The router's nginx.conf: each model's Service (and canary Service) as its upstream. The
    keyword arguments let tests run the same file on 127.0.0.1."""
    if servers is None:
        servers, weights = upstreams(stack, ns, options)
    extra: dict[str, Any] = {}
    if weights:
        extra["weights_by_model"] = weights
    if auth_enabled(stack):
        extra["auth_file"] = auth_file
    conf = model_router.nginx_conf(
        stack, ns, servers, role="Kubernetes model router", listen=listen, status_listen=status_listen,
        js_path=js_path, pid_path=pid_path, error_log=error_log, access_log=access_log, temp_dir=temp_dir,
        tls={"enabled": False}, tls_dir="", worker_processes="2", **extra,
    )
    if inference_pool.enabled(stack):
        conf = with_model_headers(conf, stack, servers)
    return conf


def model_header_line(model_name: str) -> str:
    return f'            proxy_set_header {inference_pool.MODEL_HEADER} "{model_name}";\n'


def _block_end(conf: str, start: int) -> int:
    """Index just past the `}` closing the block whose body starts at `start` (the rendered
    strings inside, JSON included, have balanced braces)."""
    depth = 1
    i = start
    while depth:
        depth += {"{": 1, "}": -1}.get(conf[i], 0)
        i += 1
    return i


def with_model_headers(conf: str, stack: ResolvedStack, servers: dict[str, list[str]]) -> str:
    """Add `proxy_set_header X-Gateway-Model-Name "<model>"` to every location that proxies to
    one of a model's upstreams: its own (`<upstream>`), its variants and twins (`<upstream>__…`:
    health variants, affinity) and its readiness probes (`tierscale_probe_<upstream>_<i>`), so
    the request, the /v1/models lookup and the probe all reach the model's pool.
    templates/gateway/nginx.conf.j2 has no per-model header hook: the header goes in after each
    such location's opening line. Fails the render (not the cluster) when a location proxies
    to an upstream that is no model's, or a model's request location (`@<upstream>`) is
    missing. Model names are DNS labels: nothing to quote."""
    owners: dict[str, str] = {}
    for m in stack.models:
        up = model_router.upstream_name(m.name)
        owners[up] = m.name
        owners.update({f"tierscale_probe_{up}_{i}": m.name for i in range(len(servers[m.name]))})
    inserts: list[tuple[int, str]] = []
    for match in re.finditer(r"^[ \t]*location [^{\n]*\{\n", conf, re.M):
        body = conf[match.end():_block_end(conf, match.end())]
        targets = set(re.findall(r"proxy_pass http://([A-Za-z0-9_]+)", body))
        if not targets:
            continue
        names = {owners.get(t, owners.get(t.split("__", 1)[0])) for t in targets}
        if None in names or len(names) != 1:
            raise ValueError(f"nginx.conf: {match.group(0).strip()!r} proxies to {sorted(targets)}, not to one "
                             "model's upstreams: cannot set its pool header (templates/gateway/nginx.conf.j2 changed?)")
        inserts.append((match.end(), model_header_line(names.pop())))
    for m in stack.models:
        anchor = f"location @{model_router.upstream_name(m.name)} {{\n"
        if conf.count(anchor) != 1:
            raise ValueError(f"nginx.conf: expected one {anchor.strip()!r} for {m.name}'s pool header, "
                             f"found {conf.count(anchor)} (templates/gateway/nginx.conf.j2 changed?)")
    for pos, line in sorted(inserts, reverse=True):
        conf = conf[:pos] + line + conf[pos:]
    return conf


def config_map(stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT) -> dict:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROUTER_NAME, "namespace": ns, "labels": labels()},
        "data": {"nginx.conf": nginx_conf(stack, ns, options=options), model_router.JS_FILE: model_router.router_js()},
    }


def auth_secret_data(api_keys: list[str]) -> dict[str, str]:
    """The router's auth Secret data: the include of the accepted keys' digests (no key in
    plaintext; model_router.auth_include)."""
    return {AUTH_KEY: model_router.auth_include(api_keys)}


def auth_checksum(include: str) -> str:
    return hashlib.sha256(include.encode()).hexdigest()


def deployment(stack: ResolvedStack, ns: str, config: dict, auth_sha256: Optional[Any] = None) -> dict:
    """`auth_sha256`: the digest of the auth include (a Pulumi Output where the component
    registers the Deployment), put on the pod template so a key change rolls the pods. GitOps
    manifests go without it (Git never depends on a secret): rotate with a rollout restart."""
    # A config change rolls the pods (a ConfigMap update alone would not reach nginx).
    checksum = hashlib.sha256("".join(config["data"][k] for k in sorted(config["data"])).encode()).hexdigest()
    health = {"httpGet": {"path": "/gateway/health", "port": "status"}, "timeoutSeconds": 2}
    container = {
        "name": "nginx",
        "image": versions.NGINX_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        # nginx itself, not the image's entrypoint scripts (they rewrite files under /etc/nginx).
        "command": ["nginx", "-c", f"{CONFIG_DIR}/nginx.conf", "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"},
                  {"name": "status", "containerPort": STATUS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {**health, "periodSeconds": 10, "failureThreshold": 3},
        # Let the endpoints drop the pod before nginx stops accepting; then the image's
        # STOPSIGNAL SIGQUIT is nginx's graceful quit: running streams finish (up to the grace
        # period, the gateway's read timeout), new connections go to the other router.
        "lifecycle": {"preStop": {"sleep": {"seconds": probes.PRESTOP_SLEEP_S}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict] = [{"name": "config", "configMap": {"name": ROUTER_NAME}},
                           {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    annotations = {"tierscale.dev/config-sha256": checksum}
    if auth_enabled(stack):
        container["volumeMounts"].append({"name": "auth", "mountPath": AUTH_DIR, "readOnly": True})
        # Not optional: without the digests nginx would not start (fail closed).
        volumes.append({"name": "auth", "secret": {"secretName": AUTH_SECRET, "defaultMode": 0o440,
                                                    "items": [{"key": AUTH_KEY, "path": AUTH_KEY}]}})
        if auth_sha256 is not None:
            annotations[AUTH_CHECKSUM_ANNOTATION] = auth_sha256
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": ROUTER_NAME, "namespace": ns, "labels": labels(), "annotations": dict(CHECKOV_SKIPS)},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": selector()},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(), "annotations": annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": stack.spec.gateway.read_timeout_s + 15,
                    # fsGroup: the auth Secret's files (0440) are the nginx user's group.
                    "securityContext": {"runAsNonRoot": True, "fsGroup": RUN_AS_ID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    # One router per node where possible: losing a node never takes both.
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                   "whenUnsatisfiable": "ScheduleAnyway",
                                                   "labelSelector": {"matchLabels": selector()}}],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service(ns: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": ROUTER_NAME, "namespace": ns, "labels": labels()},
        "spec": {"selector": selector(),
                 "ports": [{"name": "http", "port": ROUTER_PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def pod_disruption_budget(ns: str) -> dict:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": ROUTER_NAME, "namespace": ns, "labels": labels()},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector()}},
    }


def _policy(name: str, ns: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": dict(PART_OF)}, "spec": spec}


def serving_pods(stack: ResolvedStack) -> dict:
    """The vLLM pods that serve the API: not the headless workers of a multi-node group
    (nothing listens on :8000 there)."""
    pods: dict = {"matchLabels": {COMPONENT_LABEL: "vllm"}}
    if any(m.multi_node for m in stack.models):
        pods["matchExpressions"] = [{"key": ROLE_LABEL, "operator": "NotIn", "values": [multinode.WORKER]}]
    return pods


def network_policies(stack: ResolvedStack, ns: str) -> list[dict]:
    """ingress controller -> router -> vLLM API pods; the namespace's default-deny covers the
    rest (DNS egress is already allowed for every pod)."""
    router_pods = {"matchLabels": selector()}
    vllm_pods = serving_pods(stack)
    port = [{"protocol": "TCP", "port": ROUTER_PORT}]
    controller = stack.platform.routing.controller_namespace
    pooled = []
    if inference_pool.enabled(stack):
        # router -> internal Gateway (KV-aware routing). By namespace, on any port: the Gateway
        # pods' container port is the implementation's (the Service's port 80 maps to 80 on
        # Istio, 8080 on kgateway, 10080 on Envoy Gateway) and NetworkPolicy sees the pod port.
        gw_ns = stack.platform.routing.inference_pool.gateway_namespace
        pooled = [_policy("allow-model-router-egress-to-inference-gateway", ns, {
            "podSelector": router_pods, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: gw_ns}}}]}],
        })]
    return pooled + [
        _policy("allow-gateway-to-model-router", ns, {
            "podSelector": router_pods, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: controller}}}], "ports": port}],
        }),
        _policy("allow-model-router-egress-to-vllm", ns, {
            "podSelector": router_pods, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": vllm_pods}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}],
        }),
        _policy("allow-model-router-to-vllm", ns, {
            "podSelector": vllm_pods, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": router_pods}], "ports": [{"protocol": "TCP", "port": VLLM_PORT}]}],
        }),
    ]


def router_manifests(stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT,
                     auth_sha256: Optional[Any] = None) -> list[dict]:
    config = config_map(stack, ns, options)
    return [*network_policies(stack, ns), config, deployment(stack, ns, config, auth_sha256), service(ns),
            pod_disruption_budget(ns)]

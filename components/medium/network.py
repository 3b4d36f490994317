"""Traffic in and out of the serving namespace: NetworkPolicies, and the TLS entry point
(Ingress, or a Gateway API HTTPRoute on an existing Gateway).

Every client path goes through the model router (components/medium/router.py), which
authenticates each request and serves only the OpenAI API allowlist: the entry point has one
route, `/` to the router, and the vLLM pods accept connections only from the router, from
Prometheus (scrapes) and, for a multi-node model, from the pods of their own group.
"""

from __future__ import annotations

from components.medium import multinode
from components.medium.names import MONITORING_NAMESPACE, PART_OF, TLS_SECRET_NAME
from components.medium.router import ROUTER_NAME, ROUTER_PORT, serving_pods as serving_api_pods
from components.serving.vllm_args import VLLM_PORT
from components.spec import ResolvedStack

NS_NAME_LABEL = "kubernetes.io/metadata.name"
# Private ranges are excluded from the model-download egress rule: pods reach the internet
# (Hugging Face, S3) but not other workloads or the cloud metadata service.
PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]


def _policy(name: str, ns: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": dict(PART_OF)}, "spec": spec}


def network_policies(stack: ResolvedStack, ns: str) -> list[dict]:
    """Default deny; vLLM's API port open to Prometheus only (the router's own policy in
    router.network_policies opens it to the router); DNS and the model download egress. No
    rule lets the ingress controller reach a vLLM pod."""
    vllm_pods = {"matchLabels": {"app.kubernetes.io/component": "vllm"}}
    serving_pods = serving_api_pods(stack)
    port = [{"protocol": "TCP", "port": VLLM_PORT}]
    groups = [multinode.group_network_policy(m, ns) for m in stack.models if m.multi_node]
    return groups + [
        _policy("default-deny", ns, {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy("allow-prometheus-to-vllm", ns, {
            "podSelector": serving_pods, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{
                "namespaceSelector": {"matchLabels": {NS_NAME_LABEL: MONITORING_NAMESPACE}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }], "ports": port}],
        }),
        _policy("allow-dns-egress", ns, {
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}],
        }),
        _policy("allow-model-download-egress", ns, {
            "podSelector": vllm_pods, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_RANGES}}],
                        "ports": [{"protocol": "TCP", "port": 443}]}],
        }),
    ]


def served_hostnames(stack: ResolvedStack) -> list[str]:
    """tls.hostname, then platform.routing.additionalHostnames (none without tls.hostname: the
    route then serves every name)."""
    tls = stack.spec.security.tls
    if not tls.hostname:
        return []
    extra = [h for h in stack.platform.routing.additional_hostnames if h != tls.hostname]
    return [tls.hostname, *dict.fromkeys(extra)]


def ingress(stack: ResolvedStack, ns: str) -> dict:
    tls = stack.spec.security.tls
    gw = stack.spec.gateway
    annotations = {
        # Generation is long and streamed: no proxy buffering, a long read timeout.
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": str(gw.read_timeout_s),
        "nginx.ingress.kubernetes.io/proxy-send-timeout": str(gw.read_timeout_s),
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": str(gw.connect_timeout_s),
        "nginx.ingress.kubernetes.io/proxy-body-size": f"{gw.max_request_body_mb}m",
    }
    if tls.enabled and tls.cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = tls.cluster_issuer
    # One base URL for every model and the only route: everything goes to the model router
    # (auth, the API allowlist, the body's `model`); no path reaches a vLLM Service directly.
    paths = [{"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": ROUTER_NAME, "port": {"name": "http"}}}}]
    rule: dict = {"http": {"paths": paths}}
    spec: dict = {"ingressClassName": stack.platform.routing.ingress_class, "rules": [rule]}
    if tls.hostname:
        rule["host"] = tls.hostname
        # The same route under each additional name (a region's own hostname for health checks).
        spec["rules"] += [{**rule, "host": h} for h in served_hostnames(stack)[1:]]
    if tls.enabled:
        spec["tls"] = [{"hosts": served_hostnames(stack) or [tls.hostname], "secretName": TLS_SECRET_NAME}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "tierscale", "namespace": ns, "labels": dict(PART_OF), "annotations": annotations},
            "spec": spec}


def http_route(stack: ResolvedStack, ns: str) -> dict:
    """TLS terminates on the Gateway's HTTPS listener (its certificateRefs); the route attaches to it."""
    routing = stack.platform.routing
    tls = stack.spec.security.tls
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway",
              "name": routing.gateway_name, "namespace": routing.gateway_namespace}
    if tls.enabled:
        parent["sectionName"] = "https"
    # One base URL for every model and the only rule: everything goes to the model router
    # (auth, the API allowlist, the body's `model`); no path reaches a vLLM Service directly.
    # Streams may run for minutes: no route-level cap.
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backendRefs": [{"name": ROUTER_NAME, "port": ROUTER_PORT}],
              "timeouts": {"request": "0s"}}]
    spec: dict = {"parentRefs": [parent], "rules": rules}
    if tls.hostname:
        spec["hostnames"] = served_hostnames(stack)
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "tierscale", "namespace": ns, "labels": dict(PART_OF)}, "spec": spec}


def entry_point(stack: ResolvedStack, ns: str) -> dict:
    return http_route(stack, ns) if stack.platform.routing.kind == "httproute" else ingress(stack, ns)



"""KV-cache-aware routing on Kubernetes (issue #22 item 1): an InferencePool per model with the
llm-d endpoint picker (EPP), behind the model router.

The Gateway API Inference Extension's own EPP moved out of kubernetes-sigs/gateway-api-inference-
extension at v1.6.0 (its README: "The Endpoint Picker (EPP) ... moved to llm-d/llm-d-router"; the
repository keeps the InferencePool API and a round-robin "lightweight EPP" for conformance only).
The picker is therefore llm-d-router's, pinned in components/pins.yaml (llm-d-router-epp). What is
rendered here follows its Helm library chart at that tag (llm-d/llm-d-router@v0.10.0,
config/charts/routerlib/templates/):
  - _inferencepool.yaml: InferencePool inference.networking.k8s.io/v1, targetPorts [{number:
    8000}], appProtocol http, selector.matchLabels = the model's vLLM pods, endpointPickerRef
    {name: <epp Service>, port: {number: 9002}, failureMode};
  - _deployment.yaml: args --pool-name/--pool-namespace/--pool-group inference.networking.k8s.io,
    --zap-encoder json, --config-file /config/default-plugins.yaml, --grpc-health-port 9003;
    ports grpc 9002 (ext-proc), grpc-health 9003, metrics 9090; gRPC liveness/readiness on 9003
    service "inference-extension" (one replica); env NAMESPACE, POD_NAME; the config at /config;
  - _config.yaml default-plugins.yaml: EndpointPickerConfig llm-d.ai/v1alpha1 with queue-scorer
    (weight 2), kv-cache-utilization-scorer (2), prefix-cache-scorer (3), metrics-data-source
    (http, /metrics) and core-metrics-extractor: prefix-cache locality, queue depth and KV
    utilisation, each scraped from vLLM's /metrics;
  - _service.yaml: ports grpc-ext-proc 9002 (appProtocol kubernetes.io/h2c), http-metrics 9090;
  - _rbac.yaml + llm-d-router-gateway/templates/rbac.yaml: pods get/watch/list;
    inferencepools (inference.networking.k8s.io), inferenceobjectives/inferencemodelrewrites
    (inference.networking.x-k8s.io and llm-d.ai) get/watch/list;
  - llm-d-router-gateway/templates/httproute.yaml: HTTPRoute backendRefs [{group:
    inference.networking.k8s.io, kind: InferencePool, name}], matching a header.

How a request finds its model: an InferencePool is one model's replicas and its EPP picks a pod
inside it; it never chooses between models. The model router keeps doing that (it already reads
the body's `model` and authenticates the request: components/medium/router.py). With this
enabled, the router sends a model's requests to the internal Gateway
(`platform.routing.inferencePool.gatewayName`) with the header X-Gateway-Model-Name: <model
name> (the header GIE's body-based router sets, so the same HTTPRoute works with either); the
HTTPRoute here matches that header and hands the request to that model's pool, whose EPP picks
the replica. The route attaches only to the internal Gateway, never the client-facing one, so a
client cannot send the header past the router's authentication.

NetworkPolicies (the namespace is default-deny, components/medium/network.py): the Gateway's
pods (its namespace) reach the EPP's ext-proc port and the model's vLLM pods' API port (the
Gateway proxies to the pod the EPP picked); the EPP reaches vLLM's /metrics (port 8000), the
Kubernetes API (it watches pods and the pool) and DNS.
"""

from __future__ import annotations

from components import pins
from components.medium import multinode
from components.medium.manifests import restricted_container_security
from components.medium.names import APP_LABEL, COMPONENT_LABEL, PART_OF, ROLE_LABEL, workload
from components.serving.vllm_args import VLLM_PORT
from components.spec import ResolvedModel, ResolvedStack

EXT_PROC_PORT = 9002
HEALTH_PORT = 9003
METRICS_PORT = 9090
MODEL_HEADER = "X-Gateway-Model-Name"
POOL_GROUP = "inference.networking.k8s.io"
CONFIG_FILE = "default-plugins.yaml"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
ROUTE_NAME = "tierscale-inference-pools"
# The Kubernetes API server: kube-proxy DNATs the kubernetes Service to the control plane's
# address (outside the pod network; EKS: cross-account ENIs in the VPC) on 443 or 6443.
API_SERVER_PORTS = [443, 6443]
CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=Images are pinned by version tag; digests need registry access at render time",
    "checkov.io/skip2": "CKV_K8S_15=IfNotPresent on a pinned tag: a restart never depends on the registry",
    "checkov.io/skip3": "CKV_K8S_11=No CPU limit, as upstream's chart: the picker is latency-critical and bursts",
    "checkov.io/skip4": "CKV_K8S_38=The picker watches its pool and pods through the API: it needs its token",
}
# Default picker config of llm-d-router v0.10.0 (config/charts/routerlib/templates/_config.yaml).
PLUGINS_CONFIG = """\
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
- type: metrics-data-source
  parameters:
    scheme: "http"
    path: "/metrics"
    insecureSkipVerify: true
- type: core-metrics-extractor
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
"""


def enabled(stack: ResolvedStack) -> bool:
    pool = stack.platform.routing.inference_pool
    return pool is not None and pool.enabled


def pool_name(model: ResolvedModel) -> str:
    return workload(model.name)


def epp_name(model: ResolvedModel) -> str:
    return f"{workload(model.name)}-epp"


def _labels(model: ResolvedModel) -> dict[str, str]:
    return {APP_LABEL: epp_name(model), COMPONENT_LABEL: "endpoint-picker", **PART_OF}


def vllm_selector(model: ResolvedModel) -> dict[str, str]:
    """The model's serving pods: with a multi-node group only the leader (workers serve nothing)."""
    sel = {APP_LABEL: workload(model.name), COMPONENT_LABEL: "vllm"}
    if model.multi_node:
        sel[ROLE_LABEL] = multinode.LEADER
    return sel


def inference_pool(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    return {"apiVersion": f"{POOL_GROUP}/v1", "kind": "InferencePool",
            "metadata": {"name": pool_name(model), "namespace": ns, "labels": dict(PART_OF)},
            "spec": {"targetPorts": [{"number": VLLM_PORT}], "appProtocol": "http",
                     "selector": {"matchLabels": vllm_selector(model)},
                     "endpointPickerRef": {"name": epp_name(model), "kind": "Service",
                                           "port": {"number": EXT_PROC_PORT},
                                           "failureMode": stack.platform.routing.inference_pool.failure_mode}}}


def _rbac(model: ResolvedModel, ns: str) -> list[dict]:
    name = epp_name(model)
    meta = {"name": name, "namespace": ns, "labels": _labels(model)}
    read = ["get", "watch", "list"]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": True},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": read},
            {"apiGroups": [POOL_GROUP], "resources": ["inferencepools"], "verbs": read},
            {"apiGroups": ["inference.networking.x-k8s.io", "llm-d.ai"],
             "resources": ["inferenceobjectives", "inferencemodelrewrites"], "verbs": read},
        ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}},
    ]


def _deployment(model: ResolvedModel, ns: str) -> dict:
    name = epp_name(model)
    probe = {"grpc": {"port": HEALTH_PORT, "service": "inference-extension"}}
    container = {
        "name": "epp",
        "image": pins.image("llm-d-router-epp"),
        "imagePullPolicy": "IfNotPresent",
        "args": ["--pool-name", pool_name(model), "--pool-namespace", ns, "--pool-group", POOL_GROUP,
                 "--zap-encoder", "json", "--config-file", f"/config/{CONFIG_FILE}",
                 "--grpc-health-port", str(HEALTH_PORT), "--tracing=false"],
        "ports": [{"name": "grpc", "containerPort": EXT_PROC_PORT},
                  {"name": "grpc-health", "containerPort": HEALTH_PORT},
                  {"name": "metrics", "containerPort": METRICS_PORT}],
        "livenessProbe": {**probe, "initialDelaySeconds": 5, "periodSeconds": 10},
        "readinessProbe": {**probe, "periodSeconds": 2},
        "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        # Upstream asks 8 CPUs / 8 Gi (limit 16 Gi) for large fleets; one model's pool is smaller.
        "resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "8Gi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "plugins-config", "mountPath": "/config", "readOnly": True}],
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": _labels(model), "annotations": dict(CHECKOV_SKIPS)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {APP_LABEL: name}},
                     "template": {"metadata": {"labels": _labels(model)}, "spec": {
                         "serviceAccountName": name,
                         # upstream: mirror the longest grace period of the pods within the pool
                         "terminationGracePeriodSeconds": 130,
                         "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [container],
                         "volumes": [{"name": "plugins-config", "configMap": {"name": name}}]}}}}


def _service(model: ResolvedModel, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": epp_name(model), "namespace": ns, "labels": _labels(model)},
            "spec": {"type": "ClusterIP", "selector": {APP_LABEL: epp_name(model)}, "ports": [
                {"name": "grpc-ext-proc", "protocol": "TCP", "port": EXT_PROC_PORT, "targetPort": EXT_PROC_PORT,
                 "appProtocol": "kubernetes.io/h2c"},
                {"name": "http-metrics", "protocol": "TCP", "port": METRICS_PORT, "targetPort": METRICS_PORT}]}}


def _policy(name: str, ns: str, spec: dict) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, "labels": dict(PART_OF)}, "spec": spec}


def network_policies(model: ResolvedModel, stack: ResolvedStack, ns: str) -> list[dict]:
    gw_ns = stack.platform.routing.inference_pool.gateway_namespace
    from_gateway = [{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: gw_ns}}}]
    epp = {"matchLabels": {APP_LABEL: epp_name(model)}}
    tcp = lambda *ports: [{"protocol": "TCP", "port": p} for p in ports]  # noqa: E731
    return [
        _policy(f"{epp_name(model)}-ingress", ns, {
            "podSelector": epp, "policyTypes": ["Ingress"],
            "ingress": [{"from": from_gateway, "ports": tcp(EXT_PROC_PORT)}]}),
        _policy(f"{epp_name(model)}-egress", ns, {
            "podSelector": epp, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": vllm_selector(model)}}], "ports": tcp(VLLM_PORT)},
                       {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(*API_SERVER_PORTS)}]}),
        _policy(f"{pool_name(model)}-from-inference-gateway", ns, {
            "podSelector": {"matchLabels": vllm_selector(model)}, "policyTypes": ["Ingress"],
            "ingress": [{"from": from_gateway, "ports": tcp(VLLM_PORT)},
                        {"from": [{"podSelector": epp}], "ports": tcp(VLLM_PORT)}]}),
    ]


def http_route(stack: ResolvedStack, ns: str) -> dict:
    """One rule per model: header X-Gateway-Model-Name = the model's name -> its pool."""
    pool = stack.platform.routing.inference_pool
    rules = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                           "headers": [{"type": "Exact", "name": MODEL_HEADER, "value": m.name}]}],
              "backendRefs": [{"group": POOL_GROUP, "kind": "InferencePool", "name": pool_name(m)}],
              "timeouts": {"request": "0s"}}
             for m in stack.models]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": ROUTE_NAME, "namespace": ns, "labels": dict(PART_OF)},
            "spec": {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                     "name": pool.gateway_name, "namespace": pool.gateway_namespace}],
                     "rules": rules}}


def gateway_address(stack: ResolvedStack) -> str:
    """Where the model router sends a pooled model's requests (with MODEL_HEADER set): the
    internal Gateway's Service. Gateway implementations name it after the Gateway (Istio:
    <name>-<class>; kgateway/Envoy Gateway: <name>) — set gatewayName to the Service's name."""
    pool = stack.platform.routing.inference_pool
    return f"{pool.gateway_name}.{pool.gateway_namespace}.svc.cluster.local:80"


def manifests(stack: ResolvedStack, ns: str) -> list[dict]:
    """Everything KV-aware routing needs in the serving namespace ([] when it is off)."""
    if not enabled(stack):
        return []
    docs: list[dict] = []
    for m in stack.models:
        config = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": epp_name(m), "namespace": ns, "labels": _labels(m)},
                  "data": {CONFIG_FILE: PLUGINS_CONFIG}}
        docs += [*network_policies(m, stack, ns), *_rbac(m, ns), config, _deployment(m, ns), _service(m, ns),
                 inference_pool(m, stack, ns)]
    docs.append(http_route(stack, ns))
    return docs


def problems(stack: ResolvedStack) -> list[str]:
    """Refusals naming the key."""
    if not enabled(stack):
        return []
    out = []
    routing = stack.platform.routing
    if (routing.kind == "httproute" and routing.gateway_name == routing.inference_pool.gateway_name
            and routing.gateway_namespace == routing.inference_pool.gateway_namespace):
        out.append("platform.routing.inferencePool.gatewayName: must not be the client-facing Gateway "
                   f"({routing.gateway_namespace}/{routing.gateway_name}, platform.routing.gatewayName): the pool "
                   "route trusts the X-Gateway-Model-Name header only from the model router; use an internal Gateway")
    for i, m in enumerate(stack.models):
        routing = getattr(m.spec, "routing", None)
        affinity = getattr(routing, "affinity", "none") if routing is not None else "none"
        if affinity != "none":
            # The router's upstream for a pooled model is the one internal Gateway address, and
            # its affinity ring needs two servers or more (model_router.affinity_models): inert.
            out.append(f"models[{i}].routing.affinity: {affinity!r} does nothing with "
                       "platform.routing.inferencePool (the router has one upstream per model, the internal "
                       "Gateway; the endpoint picker's prefix-cache scorer places requests): use 'none'")
    return out

"""Invariants over every rendered manifest of every medium stack (existing, EKS, GitOps)."""

from __future__ import annotations

import re

import pytest
import yaml

from components.observability.metrics import KNOWN_SERIES
from components.observability.promql import referenced_metrics
from components.serving import probes

STACKS = ["medium-prod", "medium-eks", "medium-gitops"]


def docs(result):
    out = []
    for d in ("kubernetes", "gitops"):
        for f in sorted((result.out_dir / d).glob("*.yaml")):
            out.append(yaml.safe_load(f.read_text()))
    return out


def of_kind(result, kind):
    return [d for d in docs(result) if d["kind"] == kind]


@pytest.mark.parametrize("name", STACKS)
def test_deployment_invariants(medium, name):
    result = medium[name]
    # vLLM's Deployments (the model router is tested in test_router.py).
    deployments = [d for d in of_kind(result, "Deployment") if d["metadata"]["labels"].get("app.kubernetes.io/component") == "vllm"]
    assert deployments
    per_pod = {f"vllm-{m.name}": m.gpus_per_node for m in result.stack.models}
    for d in deployments:
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        gpus = str(per_pod[d["metadata"]["name"]])
        assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert pod["terminationGracePeriodSeconds"] >= c["lifecycle"]["preStop"]["sleep"]["seconds"] + probes.VLLM_SHUTDOWN_TIMEOUT_S
        assert c["args"][c["args"].index("--shutdown-timeout") + 1] == str(probes.VLLM_SHUTDOWN_TIMEOUT_S)
        assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"]["path"] == "/health"
        model = next(m for m in result.stack.models if f"vllm-{m.name}" == d["metadata"]["name"])
        startup = c["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= model.startup_budget_s
        assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+", c["image"]), c["image"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
        assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert pod["nodeSelector"]["nvidia.com/gpu.product"] == result.stack.gpu.product_label
        shm = next(v for v in pod["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory"
        env = {e["name"]: e for e in c["env"]}
        assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "tierscale-secrets"
        assert "HF_TOKEN" not in env and env["HF_TOKEN_PATH"]["value"].startswith("/var/run/secrets/")


@pytest.mark.parametrize("name", STACKS)
def test_scaled_objects_target_existing_deployments(medium, name):
    result = medium[name]
    deployments = {d["metadata"]["name"]: d for d in of_kind(result, "Deployment")}
    scaled = of_kind(result, "ScaledObject")
    assert scaled
    for so in scaled:
        spec = so["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus"
        assert referenced_metrics(trigger["metadata"]["query"]) == {"vllm:num_requests_waiting"}
        model = result.stack.model(spec["scaleTargetRef"]["name"].removeprefix("vllm-"))
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        # Scale-down pacing is the HPA's stabilization window (cooldownPeriod only governs the
        # last replica when scaling to zero): it waits out at least one cold start, one pod at a
        # time; scale-up is immediate.
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= model.startup_budget_s
        assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": max(60, model.startup_budget_s)}]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert spec["fallback"]["replicas"] >= 1


@pytest.mark.parametrize("name", STACKS)
def test_every_promql_expression_parses_and_uses_listed_metrics(medium, name):
    import json

    exprs = []
    for rule in of_kind(medium[name], "PrometheusRule"):
        exprs += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    for cm in of_kind(medium[name], "ConfigMap"):
        if cm["metadata"]["labels"].get("app.kubernetes.io/component") == "model-router":
            continue  # nginx.conf and njs, no PromQL
        for text in cm["data"].values():
            exprs += [t["expr"] for p in json.loads(text)["panels"] for t in p["targets"]]
    assert len(exprs) >= 20
    for expr in exprs:
        used = referenced_metrics(expr)
        assert used and used <= KNOWN_SERIES, expr


@pytest.mark.parametrize("name", STACKS)
def test_network_policies_default_deny_with_explicit_allows(medium, name):
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(medium[name], "NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert {"allow-prometheus-to-vllm", "allow-dns-egress", "allow-model-download-egress"} <= set(policies)
    assert "allow-gateway-to-vllm" not in policies  # the ingress controller reaches the router only
    assert policies["allow-dns-egress"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert policies["allow-prometheus-to-vllm"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_ingress_terminates_tls_and_streams(medium):
    (ingress,) = of_kind(medium["medium-prod"], "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "tierscale-tls"}]
    ann = ingress["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert ann["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


# --- who may open a connection to a vLLM pod -------------------------------------------------
# A NetworkPolicy evaluator over the rendered policies (networking.k8s.io/v1 semantics: a pod
# selected by any Ingress policy accepts exactly the union of those policies' rules; a peer
# with only podSelector means pods of the policy's namespace; an empty `from` or no `from`
# means everyone).


def _matches(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        op = e["operator"]
        if (op == "In" and value not in e["values"]) or (op == "NotIn" and present and value in e["values"]) \
                or (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _pod_templates(result) -> list[tuple[str, dict]]:
    """(name, labels) of every vLLM pod template (Deployments, LWS leaders and workers)."""
    out = []
    for d in docs(result):
        if d["kind"] == "Deployment" and d["metadata"]["labels"].get("app.kubernetes.io/component") == "vllm":
            out.append((d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"]))
        elif d["kind"] == "LeaderWorkerSet":
            lws = {"leaderworkerset.sigs.k8s.io/name": d["metadata"]["name"]}  # set by the LWS controller
            for role in ("leaderTemplate", "workerTemplate"):
                labels = d["spec"]["leaderWorkerTemplate"][role]["metadata"]["labels"]
                out.append((f"{d['metadata']['name']}/{role}", {**labels, **lws}))
    return out


def allowed_peers(result, pod_labels: dict) -> list[dict]:
    """Every ingress peer (with its ports) the rendered policies allow to reach these pods."""
    ns = result.stack.spec.target.namespace
    peers = []
    for p in of_kind(result, "NetworkPolicy"):
        spec = p["spec"]
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]) or not _matches(spec["podSelector"], pod_labels):
            continue
        for rule in spec.get("ingress", []):
            for peer in rule.get("from") or [{"everyone": True}]:
                peers.append({**peer, "ports": rule.get("ports"), "policy": p["metadata"]["name"], "ns": ns})
    return peers


def _peer_is(peer: dict, kind: str, pod_labels: dict) -> bool:
    from components.medium import router
    from components.medium.names import LWS_NAME_LABEL, MONITORING_NAMESPACE

    if kind == "router":
        return set(peer) - {"ports", "policy", "ns"} == {"podSelector"} and peer["podSelector"] == {"matchLabels": router.selector()}
    if kind == "prometheus":
        return peer.get("namespaceSelector") == {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}} \
            and peer.get("podSelector") == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    if kind == "group":  # the pods of the same LeaderWorkerSet, and only those
        return set(peer) - {"ports", "policy", "ns"} == {"podSelector"} and LWS_NAME_LABEL in pod_labels and \
            peer["podSelector"] == {"matchLabels": {LWS_NAME_LABEL: pod_labels[LWS_NAME_LABEL]}}
    raise AssertionError(kind)


@pytest.mark.parametrize("name", STACKS + ["medium-405b", "medium-405b-gitops"])
def test_vllm_pods_accept_only_the_router_prometheus_and_their_group(medium, name):
    """Issue 18 item 1: no path reaches a vLLM pod but through the model router (Prometheus
    scrapes; a multi-node group talks to itself). Fails if the ingress controller's namespace,
    another namespace or any pod may connect."""
    result = medium[name]
    templates = _pod_templates(result)
    assert templates
    for pod, labels in templates:
        peers = allowed_peers(result, labels)
        assert peers, f"{pod}: not selected by any ingress policy (default-deny must still cover it)"
        for peer in peers:
            assert any(_peer_is(peer, k, labels) for k in ("router", "prometheus", "group")), (pod, peer)
            if not _peer_is(peer, "group", labels):
                assert peer["ports"] == [{"protocol": "TCP", "port": 8000}], (pod, peer)


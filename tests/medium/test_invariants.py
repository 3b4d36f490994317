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
    assert {"allow-gateway-to-vllm", "allow-prometheus-to-vllm", "allow-dns-egress", "allow-model-download-egress"} <= set(policies)
    assert policies["allow-dns-egress"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert policies["allow-prometheus-to-vllm"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8000}]


def test_ingress_terminates_tls_and_streams(medium):
    (ingress,) = of_kind(medium["medium-prod"], "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "tierscale-tls"}]
    ann = ingress["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert ann["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600

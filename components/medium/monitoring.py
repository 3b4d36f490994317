"""Monitoring objects for kube-prometheus-stack: a ServiceMonitor per model, the shared alert
rules as a PrometheusRule, and the shared dashboard as a ConfigMap for Grafana's sidecar."""

from __future__ import annotations

from components.medium.manifests import labels, service_selector
from components.medium.names import CLUSTER_JOBS, DASHBOARD_LABEL, KPS_RELEASE, MODEL_LABEL, PART_OF, workload
from components.observability import alerts, dashboard
from components.spec import ResolvedModel, ResolvedStack


def _label_name(k8s_label: str) -> str:
    """Kubernetes label key -> the __meta_kubernetes_pod_label_* suffix Prometheus uses."""
    return "".join(c if c.isalnum() else "_" for c in k8s_label)


def service_monitor(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": workload(model.name), "namespace": ns, "labels": {**labels(model), "release": KPS_RELEASE}},
        "spec": {
            # The model's Service, whose endpoints are the pods serving the API: for a multi-node
            # model the leaders only (workers have no /metrics). The LWS controller's headless
            # Service carries only the LWS name label, so it is never selected.
            "selector": {"matchLabels": service_selector(model)},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [{
                "port": "http", "path": "/metrics", "interval": f"{stack.spec.monitoring.scrape_interval_s}s",
                # Rules, dashboard and KEDA's query group by `model`, as on the small tier.
                "relabelings": [{"sourceLabels": [f"__meta_kubernetes_pod_label_{_label_name(MODEL_LABEL)}"],
                                 "targetLabel": "model", "action": "replace"}],
            }],
        },
    }


def prometheus_rule(stack: ResolvedStack, ns: str) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "tierscale-alerts", "namespace": ns, "labels": {**PART_OF, "release": KPS_RELEASE}},
        "spec": {"groups": alerts.rule_groups(stack.spec.slo, CLUSTER_JOBS)},
    }


def dashboard_config_map(ns: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "tierscale-dashboard", "namespace": ns, "labels": {**PART_OF, DASHBOARD_LABEL: "1"}},
        "data": {f"{dashboard.DASHBOARD_UID}.json": dashboard.dashboard_json()},
    }


def monitoring_manifests(stack: ResolvedStack, ns: str) -> list[dict]:
    return [service_monitor(m, stack, ns) for m in stack.models] + [prometheus_rule(stack, ns), dashboard_config_map(ns)]

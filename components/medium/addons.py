"""Platform add-ons as pinned Helm charts, with values rendered from the stack.

`addons()` is pure (what `render` writes and the key check reads); the component turns each
`Addon` into a `kubernetes:helm.sh/v3:Release`. charts.yaml pins each chart (repository and
version) and lists the values keys we set for that version, checked because Helm silently
ignores a misspelt key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.medium import names
from components.spec import ResolvedStack

CHARTS_FILE = Path(__file__).with_name("charts.yaml")
# Placeholder for values the component fills with a Pulumi secret at deploy time.
SECRET_VALUE = "[secret]"


@dataclass(frozen=True)
class Addon:
    release: str
    chart: str
    version: str
    repo: str
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    # Dotted paths whose values are secrets, supplied by the component.
    secret_paths: tuple[str, ...] = ()


CHARTS: dict = yaml.safe_load(CHARTS_FILE.read_text())


def _pin(chart: str) -> tuple[str, str, str]:
    """(chart, version, repo) as pinned in charts.yaml."""
    return chart, CHARTS[chart]["version"], CHARTS[chart]["repo"]


GPU_OPERATOR = _pin("gpu-operator")
KEDA = _pin("keda")
KUBE_PROMETHEUS_STACK = _pin("kube-prometheus-stack")


def addons(stack: ResolvedStack) -> list[Addon]:
    """The add-ons this stack installs (each can be off when the cluster already has it)."""
    plat = stack.platform
    out: list[Addon] = []
    if plat.gpu_operator.enabled:
        out.append(Addon("gpu-operator", *GPU_OPERATOR, namespace=names.GPU_OPERATOR_NAMESPACE, values={
            "operator": {"defaultRuntime": "containerd"},
            # EKS GPU AMIs and nodes prepared by the bare-metal playbooks already have a driver;
            # a second one from the operator would fight it.
            "driver": {"enabled": stack.gpu_operator_installs_driver},
            "toolkit": {"enabled": True},
            "devicePlugin": {"enabled": True},
            "nfd": {"enabled": True},
            **({"mig": {"strategy": plat.gpu_operator.mig_strategy}} if plat.gpu_operator.mig_strategy != "none" else {}),
            "dcgmExporter": {"enabled": True, "serviceMonitor": {
                "enabled": plat.kube_prometheus_stack.enabled or stack.spec.monitoring.enabled,
                "interval": f"{stack.spec.monitoring.scrape_interval_s}s",
                "additionalLabels": {"release": names.KPS_RELEASE},
            }},
            "daemonsets": {"tolerations": [{"key": names.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]},
        }))
    if plat.keda.enabled:
        out.append(Addon("keda", *KEDA, namespace=names.KEDA_NAMESPACE, values={
            "prometheus": {
                "operator": {"enabled": True, "serviceMonitor": {"enabled": plat.kube_prometheus_stack.enabled}},
                "metricServer": {"enabled": True, "serviceMonitor": {"enabled": plat.kube_prometheus_stack.enabled}},
            },
            "resources": {
                "operator": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                "metricServer": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
            },
        }))
    if plat.kube_prometheus_stack.enabled:
        out.append(Addon(names.KPS_RELEASE, *KUBE_PROMETHEUS_STACK, namespace=names.MONITORING_NAMESPACE, values={
            # Short, predictable service names: KEDA queries http://kps-prometheus.monitoring.svc:9090.
            "fullnameOverride": names.KPS_RELEASE,
            "alertmanager": {"enabled": True},
            "prometheus": {"prometheusSpec": {
                "retention": f"{stack.spec.monitoring.retention_days}d",
                "scrapeInterval": f"{stack.spec.monitoring.scrape_interval_s}s",
                # Pick up ServiceMonitors/PrometheusRules from every release, not only this chart's.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "storageSpec": {"volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}},
                }}},
            }},
            "grafana": {
                "enabled": True,
                "adminPassword": SECRET_VALUE,
                "defaultDashboardsEnabled": True,
                "sidecar": {"dashboards": {
                    "enabled": True, "label": names.DASHBOARD_LABEL, "labelValue": "1", "searchNamespace": "ALL",
                }},
            },
        }, secret_paths=("grafana.adminPassword",)))
    return out


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (lists are leaves)."""
    if isinstance(values, dict) and values:
        return [p for k, v in values.items() for p in leaf_paths(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def unknown_keys(chart: str, version: str, values: dict) -> list[str]:
    """Keys in `values` not documented for `chart` at `version` (per charts.yaml)."""
    entry = CHARTS.get(chart)
    if entry is None or entry["version"] != version:
        return [f"<chart {chart} {version} has no reviewed key list in charts.yaml>"]
    exact = {k for k in entry["keys"] if not k.endswith(".*")}
    prefixes = tuple(k[:-1] for k in entry["keys"] if k.endswith(".*"))
    return [p for p in leaf_paths(values) if p not in exact and not p.startswith(prefixes)]


def with_secret(values: dict, path: str, secret: Any) -> dict:
    """Copy of `values` with the dotted `path` set to `secret` (a Pulumi Output)."""
    out = copy.deepcopy(values)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = secret
    return out

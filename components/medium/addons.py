"""Platform add-ons as pinned Helm charts, with values rendered from the stack.

`addons()` is pure (what `render` writes and the key check reads); the component turns each
`Addon` into a `kubernetes:helm.sh/v3:Release`. components/pins.yaml pins each chart (repository
and version); components/facts/chart_keys.yaml lists the values keys that chart version reads,
generated from its own values.yaml, because Helm silently ignores a key the chart does not read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

from components import pins
from components.facts import chart_keys
from components.facts.chart_keys import leaf_paths, unknown_keys
from components.medium import efa, names
from components.observability.metrics import dcgm_counters_csv
from components.spec import ResolvedStack

__all__ = ["Addon", "addons", "helm_chart_reference", "leaf_paths", "unknown_keys", "with_secret", "SECRET_VALUE"]

# Placeholder for values the component fills with a Pulumi secret at deploy time.
SECRET_VALUE = "[secret]"
# The charts this tier installs (each can be turned off per stack).
INSTALLED_CHARTS = ("gpu-operator", "keda", "kube-prometheus-stack")
# Charts installed only when the stack needs them (a model spans nodes; EFA on EKS). Their
# values.yaml is not in ../shared/upstream/charts, so components/facts/chart_keys.yaml has no
# key list for them: the LWS chart gets no values at all, the EFA device plugin only keys
# checked against components/facts/efa.yaml (tests/medium).
ON_DEMAND_CHARTS = ("lws", "aws-efa-k8s-device-plugin")


def helm_chart_reference(chart: str, repo: str) -> tuple[str, Optional[str]]:
    """(Release `chart`, `repositoryOpts.repo`) that pulumi-kubernetes can pull.

    A chart in an OCI registry has no index.yaml: pulumi-kubernetes resolves a bare chart name
    against `repositoryOpts.repo` with Helm's FindChartInRepoURL, which downloads
    `<repo>/index.yaml` and fails for `oci://` (pulumi/pulumi-kubernetes issue 2158). Only a
    chart that is itself an `oci://` reference skips the repository lookup
    (pulumi/pulumi-kubernetes@v4.32.0 provider/pkg/provider/helm_release.go, resolveChartName:
    `if registry.IsOCI(name) { return "", name, nil }`, then locateChart pulls it with the
    registry client). So an OCI chart is `oci://<registry path>/<chart>` with no repo.
    """
    if repo.startswith("oci://"):
        return f"{repo.rstrip('/')}/{chart}", None
    return chart, repo


@dataclass(frozen=True)
class Addon:
    release: str
    # What the Release's `chart` gets: a chart name in `repo`, or a full `oci://` reference
    # (then `repo` is None: helm_chart_reference).
    chart: str
    version: str
    repo: Optional[str]
    namespace: str
    values: dict[str, Any] = field(default_factory=dict)
    # Dotted paths whose values are secrets, supplied by the component.
    secret_paths: tuple[str, ...] = ()


    @property
    def chart_name(self) -> str:
        """The chart's own name (components/pins.yaml, chart_keys.yaml key)."""
        return self.chart.rsplit("/", 1)[-1]


def _pin(chart: str) -> tuple[str, str, Optional[str]]:
    """(chart reference, version, repo) as pinned in components/pins.yaml."""
    pin = pins.chart(chart)
    ref, repo = helm_chart_reference(chart, pin.repo)
    return ref, pin.version, repo


GPU_OPERATOR = _pin("gpu-operator")
KEDA = _pin("keda")
KUBE_PROMETHEUS_STACK = _pin("kube-prometheus-stack")
LWS = _pin("lws")
EFA_DEVICE_PLUGIN = _pin("aws-efa-k8s-device-plugin")


def has_key_list(addon: "Addon") -> bool:
    """Whether components/facts/chart_keys.yaml lists the keys of this chart version (what the
    `Helm values keys` validator checks the rendered values file against)."""
    entry = chart_keys.load().get(addon.chart_name)
    return entry is not None and entry["version"] == addon.version


def dcgm_counters_config() -> dict:
    """gpu-operator `dcgmExporter.config`: the chart creates a ConfigMap in its namespace with
    the project's counters (key dcgm-metrics.csv) and the operator points the exporter at it.
    Without it the exporter runs its default dcp-metrics-included.csv, where
    DCGM_FI_DEV_ECC_DBE_VOL_TOTAL is commented out and GpuEccDoubleBitErrors could never fire.
    (gpu-operator v25.3.2 TransformDCGMExporter sets DCGM_EXPORTER_COLLECTORS to the mounted
    file after applying dcgmExporter.env, so the chart's default env does not win.)"""
    return {"name": names.DCGM_COUNTERS_CONFIGMAP, "create": True, "data": dcgm_counters_csv()}


def addons(stack: ResolvedStack) -> list[Addon]:
    """The add-ons this stack installs (each can be off when the cluster already has it)."""
    plat = stack.platform
    out: list[Addon] = []
    if plat.gpu_operator.enabled:
        out.append(Addon("gpu-operator", *GPU_OPERATOR, namespace=names.GPU_OPERATOR_NAMESPACE, values={
            # EKS GPU AMIs and nodes prepared by the bare-metal playbooks already have a driver;
            # a second one from the operator would fight it.
            # An operator-installed driver is the R580 pin, not the chart's R570 default: the
            # pinned vLLM image is CUDA 13.0 (components/pins.yaml, docs/vllm.md).
            "driver": {"enabled": stack.gpu_operator_installs_driver,
                       **({"version": pins.data()["charts"]["gpu-operator"]["driver_version"]}
                          if stack.gpu_operator_installs_driver else {})},
            "toolkit": {"enabled": True},
            "devicePlugin": {"enabled": True},
            "nfd": {"enabled": True},
            **({"mig": {"strategy": plat.gpu_operator.mig_strategy}} if plat.gpu_operator.mig_strategy != "none" else {}),
            "dcgmExporter": {"enabled": True, "config": dcgm_counters_config(), "serviceMonitor": {
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
    if any(m.multi_node for m in stack.models):
        # LeaderWorkerSet controller and CRD (kubernetes-sigs/lws v0.9.0), installed because a
        # model spans nodes. Chart defaults: the released chart pins its image to the tag.
        out.append(Addon("lws", *LWS, namespace=names.LWS_NAMESPACE, values={}))
    if efa.node_interfaces(stack):
        # EFA device plugin: advertises vpc.amazonaws.com/efa on the EFA interfaces of the GPU
        # nodes. Its DaemonSet tolerates only CriticalAddonsOnly by default (templates/
        # daemonset.yaml), so it needs the GPU nodes' taint.
        out.append(Addon("aws-efa-k8s-device-plugin", *EFA_DEVICE_PLUGIN, namespace=names.EFA_NAMESPACE, values={
            "tolerations": [{"key": names.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        }))
    return out


def with_secret(values: dict, path: str, secret: Any) -> dict:
    """Copy of `values` with the dotted `path` set to `secret` (a Pulumi Output)."""
    out = copy.deepcopy(values)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = secret
    return out

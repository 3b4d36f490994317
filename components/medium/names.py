"""Names and labels the medium tier's manifests share (one place to find each)."""

from __future__ import annotations

APP_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MODEL_LABEL = "tierscale.dev/model"
PART_OF = {"app.kubernetes.io/part-of": "tierscale"}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
SECRET_NAME = "tierscale-secrets"
TLS_SECRET_NAME = "tierscale-tls"

GPU_OPERATOR_NAMESPACE = "gpu-operator"
KEDA_NAMESPACE = "keda"
MONITORING_NAMESPACE = "monitoring"
KPS_RELEASE = "kps"
DEFAULT_PROMETHEUS_URL = f"http://{KPS_RELEASE}-prometheus.{MONITORING_NAMESPACE}.svc:9090"
DASHBOARD_LABEL = "grafana_dashboard"
# Prometheus job names on Kubernetes: the scraped Service's name.
CLUSTER_JOBS = "vllm-.*|nvidia-dcgm-exporter"


def workload(model_name: str) -> str:
    return f"vllm-{model_name}"
# ConfigMap (gpu-operator namespace) with the project's dcgm-exporter counters.
DCGM_COUNTERS_CONFIGMAP = "tierscale-dcgm-counters"

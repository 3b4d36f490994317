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


def group_set(model_name: str) -> str:
    """The LeaderWorkerSet of a multi-node model. Not `workload()`: the LWS controller creates a
    headless Service named after the LWS (its pods' subdomain, LWS_LEADER_ADDRESS), which must
    not collide with the model's Service `vllm-<model>`."""
    return f"vllm-{model_name}-lws"


# LeaderWorkerSet (kubernetes-sigs/lws v0.9.0, api/leaderworkerset/v1/leaderworkerset_types.go).
LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
LWS_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"          # every pod (and the headless Service)
LWS_GROUP_KEY_LABEL = "leaderworkerset.sigs.k8s.io/group-key"  # unique per group
LWS_NAMESPACE = "lws-system"
# Our own role label on the LWS pod templates: the Service, PDB and policies select leaders by it.
ROLE_LABEL = "tierscale.dev/role"
EFA_RESOURCE = "vpc.amazonaws.com/efa"
EFA_NAMESPACE = "kube-system"
# ConfigMap (gpu-operator namespace) with the project's dcgm-exporter counters.
DCGM_COUNTERS_CONFIGMAP = "tierscale-dcgm-counters"

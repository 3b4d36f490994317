"""KEDA ScaledObjects: scale each model's Deployment (or LeaderWorkerSet) on vLLM's queue depth.

A multi-node model is scaled in whole groups: the ScaledObject targets its LeaderWorkerSet,
whose scale subresource (lws v0.9.0 CRD `subresources.scale`) sets spec.replicas, the number of
groups; the HPA's pod selector (status.hpaPodSelector) is the leaders'. The query counts
vllm:num_requests_waiting, which only leaders export (workers run headless), so the threshold
is per group.

Whitepaper defaults: scale when vllm:num_requests_waiting per replica exceeds 10, between 2
and 50 replicas. A replica takes `startup_budget_s` to become ready, so scale-down waits
twice that long: dropping a replica we need again in a minute costs a full cold start.

Two different knobs (KEDA ScaledObject spec, keda.sh/v1alpha1):
- `advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds` paces
  every scale-down between maxReplicaCount and minReplicaCount (the HPA does it): here two cold
  starts, one pod per period.
- `cooldownPeriod` applies only to scaling to zero: how long after the last active trigger
  KEDA waits before taking the workload from 1 replica to 0. It matters only when
  minReplicaCount is 0 (autoscaling.minReplicas: 0); with a floor of 1 or more it does nothing.
"""

from __future__ import annotations

from components.medium.manifests import labels
from components.medium.names import DEFAULT_PROMETHEUS_URL, LWS_API_VERSION, group_set, workload
from components.observability.metrics import metric
from components.spec import ResolvedModel, ResolvedStack


def queue_depth_query(model: ResolvedModel, ns: str) -> str:
    return f'sum({metric("vllm:num_requests_waiting")}{{namespace="{ns}", model="{model.name}"}})'


def scale_target(model: ResolvedModel) -> dict:
    """What KEDA scales: the Deployment, or the LeaderWorkerSet of a multi-node model."""
    if model.multi_node:
        return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": group_set(model.name)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload(model.name)}


def scaled_object(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    a = model.spec.autoscaling
    assert a is not None
    cold_start = model.startup_budget_s
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": workload(model.name), "namespace": ns, "labels": labels(model)},
        "spec": {
            "scaleTargetRef": scale_target(model),
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "pollingInterval": a.polling_interval_s,
            # Only used for the last replica when minReplicaCount is 0 (scale to zero).
            "cooldownPeriod": a.cooldown_period_s or 2 * cold_start,
            # If Prometheus is unreachable, hold a safe floor instead of freezing at any size.
            "fallback": {"failureThreshold": 3, "replicas": a.fallback_replicas or max(a.min_replicas, 1)},
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                # Scale up at once (queues grow fast), at most doubling per minute.
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60},
                                         {"type": "Pods", "value": 2, "periodSeconds": 60}]},
                # Scale down slowly (every step above minReplicaCount): only after load stayed low
                # for two cold starts, one pod at a time.
                "scaleDown": {"stabilizationWindowSeconds": 2 * cold_start, "selectPolicy": "Min",
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": max(60, cold_start)}]},
            }}},
            "triggers": [{
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": stack.platform.prometheus_url or DEFAULT_PROMETHEUS_URL,
                    "query": queue_depth_query(model, ns),
                    "threshold": str(a.queue_depth_threshold),
                    # An empty result (no replica scraped yet) counts as no queue.
                    "ignoreNullValues": "true",
                },
            }],
        },
    }


def scaled_objects(stack: ResolvedStack, ns: str) -> list[dict]:
    return [scaled_object(m, stack, ns) for m in stack.models if m.spec.autoscaling is not None]

"""Kubernetes manifests for serving one or more models, as plain dicts.

Pure functions of the resolved spec. The medium component registers each dict as a typed
Pulumi resource, and `tierscale render` writes the same dicts, so GitOps output and
`pulumi up` cannot drift apart.
"""

from __future__ import annotations

from components.serving import probes, versions
from components.serving.vllm_args import API_KEY_ENV, HF_TOKEN_ENV, VLLM_PORT, vllm_serve_args
from components.spec import ResolvedModel, ResolvedStack

SECRET_NAME = "tierscale-secrets"
APP_LABEL = "app.kubernetes.io/name"
PART_OF = {"app.kubernetes.io/part-of": "tierscale"}
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
MODEL_CACHE_GIB_MIN = 50


def labels(model: ResolvedModel) -> dict[str, str]:
    return {APP_LABEL: f"vllm-{model.name}", "tierscale.dev/model": model.name, **PART_OF}


def selector(model: ResolvedModel) -> dict[str, str]:
    return {APP_LABEL: f"vllm-{model.name}"}


def namespace(ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(PART_OF)}}


def model_cache_pvc(model: ResolvedModel, ns: str) -> dict:
    size = max(MODEL_CACHE_GIB_MIN, int(model.plan.weight_bytes / 2**30 * 1.5) + 1)
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"model-cache-{model.name}", "namespace": ns, "labels": labels(model)},
        # ReadWriteMany lets every replica share one download; ReadWriteOnce would need one
        # cache per pod.
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": f"{size}Gi"}}},
    }


def deployment(model: ResolvedModel, stack: ResolvedStack, ns: str, max_surge: int = 1) -> dict:
    gpus = model.tensor_parallel
    env = [
        {"name": "HF_HOME", "value": "/models"},
        {"name": HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "hf-token", "optional": True}}},
    ]
    if stack.spec.security.api_auth:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "api-key"}}})
    shm_gib = max(8, 2 * model.tensor_parallel)
    container = {
        "name": "vllm",
        "image": versions.VLLM_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": vllm_serve_args(model, VLLM_PORT),
        "env": env,
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {GPU_RESOURCE: str(gpus), "cpu": str(4 * gpus), "memory": f"{32 * gpus}Gi"},
            "limits": {GPU_RESOURCE: str(gpus), "cpu": str(8 * gpus), "memory": f"{64 * gpus}Gi"},
        },
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": probes.PROBE_PERIOD_S,
            "failureThreshold": probes.startup_failure_threshold(model.startup_budget_s),
            "timeoutSeconds": 5,
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 15, "failureThreshold": 4, "timeoutSeconds": 10},
        "lifecycle": {"preStop": {"sleep": {"seconds": probes.PRESTOP_SLEEP_S}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "readOnlyRootFilesystem": False,
        },
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}, {"name": "model-cache", "mountPath": "/models"}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model)},
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": selector(model)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": max_surge}},
            "template": {
                "metadata": {"labels": labels(model)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": probes.TERMINATION_GRACE_S,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "nodeSelector": {GPU_PRODUCT_LABEL: stack.gpu.product_label},
                    "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}},
                        {"name": "model-cache", "persistentVolumeClaim": {"claimName": f"model-cache-{model.name}"}},
                    ],
                },
            },
        },
    }


def service(model: ResolvedModel, ns: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model)},
        "spec": {"selector": selector(model), "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def pod_disruption_budget(model: ResolvedModel, ns: str) -> dict:
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(model)}},
    }


def model_manifests(model: ResolvedModel, stack: ResolvedStack, ns: str) -> list[dict]:
    return [model_cache_pvc(model, ns), deployment(model, stack, ns), service(model, ns), pod_disruption_budget(model, ns)]


def default_deny(ns: str) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns, "labels": dict(PART_OF)},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def serving_manifests(stack: ResolvedStack, ns: str) -> list[dict]:
    docs = [namespace(ns), default_deny(ns)]
    for model in stack.models:
        docs += model_manifests(model, stack, ns)
    return docs

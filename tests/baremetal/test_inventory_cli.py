"""`tierscale inventory` writes an inventory Ansible accepts, from the stack spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from components.serving.vllm_args import vllm_serve_args
from tests.conftest import run_cli
from tests.support.stacks import example_stack


def test_inventory_command_writes_groups_and_vars(tmp_path):
    result = run_cli("inventory", "--stack", "baremetal-lab", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(tmp_path / "inventory.yml"),
                           "--list"], capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["gpu_nodes"]["hosts"]) == {"gpu-h100-01", "gpu-h100-02", "gpu-l40s-01"}
    assert set(data["nvswitch_nodes"]["hosts"]) == {"gpu-h100-01", "gpu-h100-02"}
    assert data["k8s_workers"]["hosts"] == ["gpu-l40s-01"]
    hostvars = data["_meta"]["hostvars"]["gpu-h100-01"]
    # baremetal-lab connects as `ops`: the roles must escalate (root needs no sudo).
    assert hostvars["ansible_user"] == "ops" and hostvars["ansible_become"] is True
    assert hostvars["gpu_validation_expected_gpus"] == 8
    assert [(u["name"], u["role"], u["gpu_ids"], u["port"]) for u in hostvars["vllm_units"]] == \
        [("llama-70b-0", "single", [str(i) for i in range(8)], 8000)]
    # group_vars/ next to the inventory is loaded by Ansible itself.
    assert hostvars["nvidia_driver_branch"] == "580" and hostvars["nccl_version"] == "2.26.2"
    stack = example_stack("baremetal-lab")
    assert hostvars["vllm_units"][0]["args"] == vllm_serve_args(stack.model("llama-70b"), 8000)
    assert hostvars["gpu_validation_min_busbw_gbps"] == 270.0  # 60% of 900/2 GB/s NVLink 4
    text = (tmp_path / "group_vars/all/tierscale.yml").read_text()
    assert "vllm_api_key" not in yaml.safe_load(text)


def test_inventory_refuses_a_non_baremetal_stack(tmp_path):
    result = run_cli("inventory", "--stack", "small-dev", "--out", str(tmp_path))
    assert result.returncode == 2 and "tier: is 'small'" in result.stderr and "Traceback" not in result.stderr


def test_hand_written_example_inventory_drives_the_playbooks():
    ansible_dir = Path(__file__).resolve().parents[2] / "ansible"
    inv = ansible_dir / "inventory/example/hosts.yml"
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(ansible_dir / "ansible.cfg"))
    listed = subprocess.run([str(bin_dir / "ansible-inventory"), "-i", str(inv), "--list"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0, listed.stderr
    hostvars = json.loads(listed.stdout)["_meta"]["hostvars"]["hgx-01"]
    assert hostvars["nccl_ib_hca"] == "mlx5_0,mlx5_1,mlx5_2,mlx5_3"
    assert [u["name"] for u in hostvars["vllm_units"]] == ["llama-405b-0"]
    for playbook in ("site.yml", "verify.yml", "upgrade-driver.yml", "reset.yml"):
        check = subprocess.run([str(bin_dir / "ansible-playbook"), "-i", str(inv), "--syntax-check", playbook],
                               cwd=ansible_dir, capture_output=True, text=True, env=env)
        assert check.returncode == 0, check.stdout + check.stderr


def test_multi_node_replica_and_mixed_fleet_host_vars(tmp_path):
    """baremetal-405b: the 405B replica is a leader unit on gpu-h100-01 and a worker unit on
    gpu-h100-02; each host carries its own GPU facts (the L40S host its PCIe floor)."""
    result = run_cli("inventory", "--stack", "baremetal-405b", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    hosts = yaml.safe_load((tmp_path / "inventory.yml").read_text())["all"]["hosts"]
    (leader,) = hosts["gpu-h100-01"]["vllm_units"]
    (worker,) = hosts["gpu-h100-02"]["vllm_units"]
    assert leader["name"] == worker["name"] == "llama-405b-0"
    assert (leader["role"], leader["node_rank"], worker["role"], worker["node_rank"]) == ("leader", 0, "worker", 1)
    for unit in (leader, worker):
        assert unit["nnodes"] == 2 and unit["master_addr"] == "10.20.0.11" and unit["master_port"] == 29501
        assert unit["gpu_ids"] == [str(i) for i in range(8)] and unit["rendezvous_port"] == 29600
        assert [m["host"] for m in unit["members"]] == ["gpu-h100-01", "gpu-h100-02"]
    assert leader["args"][-8:] == ["--nnodes", "2", "--node-rank", "0", "--master-addr", "10.20.0.11", "--master-port", "29501"]
    assert worker["args"][-9:] == ["--nnodes", "2", "--node-rank", "1", "--master-addr", "10.20.0.11", "--master-port",
                                   "29501", "--headless"]
    assert leader["port"] == 8000 and "port" not in worker  # workers are headless
    assert leader["stages"] == [0] and worker["stages"] == [1]
    l40s = hosts["gpu-l40s-01"]
    assert (l40s["gpu_validation_gpu_type"], l40s["gpu_validation_gpu_product"]) == ("l40s", "NVIDIA-L40S")
    assert l40s["gpu_validation_min_busbw_gbps"] == 19.2  # 60% of 64/2 GB/s PCIe 4, not the NVLink floor
    assert hosts["gpu-h100-01"]["gpu_validation_min_busbw_gbps"] == 270.0
    assert [(u["name"], u["gpu_ids"], u["port"]) for u in l40s["vllm_units"]] == \
        [("llama-8b-0", ["0"], 8001), ("llama-8b-1", ["1"], 8003)]
    assert "gpu_validation_min_busbw_gbps" not in yaml.safe_load((tmp_path / "group_vars/all/tierscale.yml").read_text())


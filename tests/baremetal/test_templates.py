"""The roles' templates rendered by Ansible itself for every host of the example stacks: the
vLLM units (one per replica placed on the host, leader/worker units of multi-node replicas),
nccl.conf and exporter configs match the stack spec and its placement."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from components.observability.metrics import dcgm_counters_csv
from components.baremetal.inventory import units_by_host
from components.serving import probes, versions
from tests.conftest import REPO, run_cli
from tests.support.stacks import example_stack

PLAYBOOK = """\
- name: Render role templates for review
  hosts: all
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    out: "{{ render_out }}/{{ inventory_hostname }}"
    preflight_has_gpu: "{{ (gpu_validation_expected_gpus | int) > 0 }}"
  tasks:
    - name: Render | Create the host's directory
      ansible.builtin.file:
        path: "{{ out }}"
        state: directory
        mode: "0755"
    - name: Render | vLLM units and env files
      ansible.builtin.include_role:
        name: vllm
        tasks_from: config.yml
      vars:
        vllm_config_dir: "{{ out }}"
        vllm_systemd_dir: "{{ out }}"
        vllm_manage_services: false
        vllm_api_key: planted-api-key
        # What the role detects on a real host (vllm_netinfo.py), fixed for review.
        vllm_host_ip: "{{ ansible_host }}"
        vllm_socket_ifname: bond0
    - name: Render | nccl.conf
      ansible.builtin.include_role:
        name: nccl
        tasks_from: config.yml
      vars:
        nccl_conf_path: "{{ out }}/nccl.conf"
    - name: Render | exporter configs
      ansible.builtin.include_role:
        name: monitoring_agents
        tasks_from: config.yml
      vars:
        monitoring_agents_manage_services: false
        monitoring_agents_node_exporter_defaults_path: "{{ out }}/prometheus-node-exporter"
        monitoring_agents_config_dir: "{{ out }}"
        monitoring_agents_systemd_dir: "{{ out }}"
"""


def _render(tmp_path_factory, stack: str) -> Path:
    work = tmp_path_factory.mktemp(f"templates-{stack}")
    inv = work / "inventory"
    result = run_cli("inventory", "--stack", stack, "--out", str(inv))
    assert result.returncode == 0, result.stderr
    (work / "render.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible/ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(os.sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["ansible-playbook", "-i", str(inv / "inventory.yml"), str(work / "render.yml"),
                           "-e", f"render_out={work / 'out'}"], cwd=REPO / "ansible", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return work / "out"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return _render(tmp_path_factory, "baremetal-lab")


@pytest.fixture(scope="module")
def rendered_405b(tmp_path_factory):
    return _render(tmp_path_factory, "baremetal-405b")


@pytest.mark.parametrize("name", ["baremetal-lab", "baremetal-405b"])
def test_vllm_units_match_the_placement(name, rendered, rendered_405b):
    out = {"baremetal-lab": rendered, "baremetal-405b": rendered_405b}[name]
    stack = example_stack(name)
    units = units_by_host(stack)
    for host in stack.spec.target.hosts:
        written = sorted(p.name for p in (out / host.name).glob("vllm-*.service"))
        assert written == sorted(f"vllm-{u['name']}.service" for u in units[host.name])
        for u in units[host.name]:
            unit = (out / host.name / f"vllm-{u['name']}.service").read_text()
            assert f"ExecStart=/opt/tierscale/vllm/venv/bin/vllm serve {shlex.join(u['args'])}\n" in unit, unit
            assert f"Environment=CUDA_VISIBLE_DEVICES={','.join(u['gpu_ids'])}\n" in unit
            # A worker waits up to its leader's stop budget (ExecStop), then has its own margin.
            stop_budget = probes.VLLM_SHUTDOWN_TIMEOUT_S + 30 + (30 if u["role"] == "worker" else 0)
            assert f"TimeoutStopSec={stop_budget}\n" in unit
            assert "KillSignal=SIGTERM" in unit and "User=vllm" in unit
            assert "planted-api-key" not in unit
            env = out / host.name / f"vllm-{u['name']}.env"
            assert env.stat().st_mode & 0o777 == 0o600 and "VLLM_API_KEY=planted-api-key" in env.read_text()
    # No GPU is handed out twice on a host, and every replica of every model has its unit(s).
    for host, host_units in units.items():
        ids = [i for u in host_units for i in u["gpu_ids"]]
        assert len(ids) == len(set(ids)), host
    for m in stack.models:
        assert sum(1 for us in units.values() for u in us if u["model"] == m.name) == sum(len(r.groups) for r in m.placement)


def test_tensor_parallel_8_takes_all_gpus_of_an_hgx_node(rendered):
    unit = (rendered / "gpu-h100-01" / "vllm-llama-70b-0.service").read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in unit and "--tensor-parallel-size 8" in unit


def test_405b_replica_is_a_leader_and_a_worker_unit(rendered_405b):
    leader = (rendered_405b / "gpu-h100-01" / "vllm-llama-405b-0.service").read_text()
    worker = (rendered_405b / "gpu-h100-02" / "vllm-llama-405b-0.service").read_text()
    flags = "--tensor-parallel-size 8 --pipeline-parallel-size 2"
    assert flags in leader and flags in worker
    assert "--nnodes 2 --node-rank 0 --master-addr 10.20.0.11 --master-port 29501\n" in leader
    assert "--nnodes 2 --node-rank 1 --master-addr 10.20.0.11 --master-port 29501 --headless\n" in worker
    for unit, address in ((leader, "10.20.0.11"), (worker, "10.20.0.12")):
        assert f"Environment=VLLM_HOST_IP={address}\n" in unit and "Environment=VLLM_PORT=29600\n" in unit
        assert "Environment=NCCL_SOCKET_IFNAME==bond0\n" in unit and "Environment=GLOO_SOCKET_IFNAME=bond0\n" in unit
        assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7\n" in unit
    # Workers join the leader: they wait for its master port before vLLM starts.
    assert "ExecStartPre" not in leader
    budget = example_stack("baremetal-405b").model("llama-405b").startup_budget_s
    assert (f"ExecStartPre=/usr/bin/timeout {budget} /bin/bash -c 'until (exec 3<>/dev/tcp/10.20.0.11/29501) "
            "2>/dev/null; do sleep 2; done'\n") in worker
    assert f"TimeoutStartSec={budget + 60}\n" in worker
    # Stopping: the worker outlives its leader (waits until the leader's master port closes,
    # at most the leader's stop budget); the leader drains on SIGTERM.
    leader_budget = probes.VLLM_SHUTDOWN_TIMEOUT_S + 30  # the drain + vllm_stop_margin_s
    assert "ExecStop" not in leader and f"TimeoutStopSec={leader_budget}\n" in leader
    assert f"ExecStop=/opt/tierscale/vllm/bin/vllm-await-leader-exit 10.20.0.11 29501 {leader_budget}\n" in worker
    assert f"TimeoutStopSec={leader_budget + 30}\n" in worker
    # The mixed fleet: the L40S host's two 8B replicas are single-node units on GPUs 0 and 1.
    singles = sorted(p.name for p in (rendered_405b / "gpu-l40s-01").glob("vllm-*.service"))
    assert singles == ["vllm-llama-8b-0.service", "vllm-llama-8b-1.service"]


def test_nccl_conf(rendered):
    for host in example_stack("baremetal-lab").spec.target.hosts:
        conf = (rendered / host.name / "nccl.conf").read_text()
        settings = dict(line.split("=", 1) for line in conf.splitlines() if line and not line.startswith("#"))
        assert settings == {"NCCL_DEBUG": "WARN"}  # interfaces left to NCCL's auto-detection by default


def test_exporter_configs(rendered):
    for host in example_stack("baremetal-lab").spec.target.hosts:
        out = rendered / host.name
        assert "--web.listen-address=:9100" in (out / "prometheus-node-exporter").read_text()
        counters = (out / "dcgm-counters.csv").read_text()
        expected = [line for line in dcgm_counters_csv().splitlines() if not line.startswith("#")]
        assert [line for line in counters.splitlines() if line and not line.startswith("#")] == expected
        unit = (out / "dcgm-exporter.service").read_text()
        assert versions.DCGM_EXPORTER_IMAGE in unit and "-f /etc/dcgm-exporter/tierscale.csv" in unit

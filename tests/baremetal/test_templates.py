"""The roles' templates rendered by Ansible itself for every host of the example stack: the
vLLM unit, nccl.conf and exporter configs match the stack spec."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from components.observability.metrics import dcgm_counters_csv
from components.serving import probes, versions
from components.serving.vllm_args import VLLM_PORT, vllm_serve_args
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


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    work = tmp_path_factory.mktemp("templates")
    inv = work / "inventory"
    result = run_cli("inventory", "--stack", "baremetal-lab", "--out", str(inv))
    assert result.returncode == 0, result.stderr
    (work / "render.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible/ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{Path(os.sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["ansible-playbook", "-i", str(inv / "inventory.yml"), str(work / "render.yml"),
                           "-e", f"render_out={work / 'out'}"], cwd=REPO / "ansible", env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return work / "out"


def test_vllm_units_match_the_stack(rendered):
    stack = example_stack("baremetal-lab")
    ports = {m.name: VLLM_PORT + i for i, m in enumerate(stack.models)}
    for host in stack.spec.target.hosts:
        offset = 0
        for name in host.models:
            model = stack.model(name)
            unit = (rendered / host.name / f"vllm-{name}.service").read_text()
            args = shlex.join(vllm_serve_args(model, ports[name]))
            assert f"ExecStart=/opt/tierscale/vllm/venv/bin/vllm serve {args}\n" in unit, unit
            gpus = ",".join(str(i) for i in range(offset, offset + model.gpus_per_replica))
            assert f"Environment=CUDA_VISIBLE_DEVICES={gpus}\n" in unit
            offset += model.gpus_per_replica
            assert f"TimeoutStopSec={probes.VLLM_SHUTDOWN_TIMEOUT_S + 30}\n" in unit
            assert "KillSignal=SIGTERM" in unit and "User=vllm" in unit
            assert "planted-api-key" not in unit
            env = rendered / host.name / f"vllm-{name}.env"
            assert env.stat().st_mode & 0o777 == 0o600 and "VLLM_API_KEY=planted-api-key" in env.read_text()


def test_tensor_parallel_8_takes_all_gpus_of_an_hgx_node(rendered):
    unit = (rendered / "gpu-h100-01" / "vllm-llama-70b.service").read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6,7" in unit and "--tensor-parallel-size 8" in unit


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

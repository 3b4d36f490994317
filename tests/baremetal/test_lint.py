"""ansible-lint with the production profile over every role and playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_ansible_lint_production_profile():
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", NO_COLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-lint"), "--profile", "production", "--offline"],
                          cwd=REPO / "ansible", env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in proc.stderr + proc.stdout


def test_every_role_has_specs_defaults_tasks_and_meta():
    roles = sorted((REPO / "ansible/roles").iterdir())
    assert {r.name for r in roles} >= {"preflight", "nvidia_driver", "nvidia_fabricmanager", "nccl", "rdma",
                                       "container_toolkit", "vllm", "monitoring_agents", "gpu_validation"}
    for role in roles:
        for rel in ("defaults/main.yml", "tasks/main.yml", "meta/main.yml", "meta/argument_specs.yml"):
            assert (role / rel).exists(), f"{role.name}: missing {rel}"


def test_role_defaults_follow_the_single_sources():
    """Role defaults serve hand-written inventories; they must equal the project's pins."""
    import yaml

    from components.baremetal.inventory import VLLM_VERSION
    from components.observability.metrics import dcgm_counters_csv
    from components.serving import probes, versions
    from components.spec.model import BaremetalTarget

    def defaults(role):
        return yaml.safe_load((REPO / f"ansible/roles/{role}/defaults/main.yml").read_text())

    target = BaremetalTarget.model_fields
    assert defaults("vllm")["vllm_image"] == versions.VLLM_IMAGE
    assert defaults("vllm")["vllm_version"] == VLLM_VERSION
    assert defaults("vllm")["vllm_shutdown_timeout_s"] == probes.VLLM_SHUTDOWN_TIMEOUT_S
    assert defaults("monitoring_agents")["monitoring_agents_dcgm_exporter_image"] == versions.DCGM_EXPORTER_IMAGE
    assert defaults("monitoring_agents")["monitoring_agents_dcgm_counters"] == dcgm_counters_csv()
    assert defaults("nvidia_driver")["nvidia_driver_branch"] == target["driver_branch"].default
    assert defaults("nccl")["nccl_version"] == target["nccl_version"].default
    assert defaults("nccl")["nccl_cuda_version"] == target["cuda_version"].default

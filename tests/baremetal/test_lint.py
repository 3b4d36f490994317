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
    """Role defaults serve hand-written inventories; they must equal the project's pins
    (components/pins.yaml), the metric list and the spec defaults."""
    import yaml

    from components import pins
    from components.baremetal.inventory import VLLM_VERSION
    from components.observability.metrics import dcgm_counters_csv
    from components.serving import probes
    from components.spec.model import BaremetalTarget

    def defaults(role, part="defaults"):
        return yaml.safe_load((REPO / f"ansible/roles/{role}/{part}/main.yml").read_text())

    assert defaults("vllm")["vllm_image"] == pins.image("vllm")
    assert defaults("vllm")["vllm_version"] == VLLM_VERSION == pins.image("vllm").rsplit(":v", 1)[1]
    assert defaults("vllm")["vllm_shutdown_timeout_s"] == probes.VLLM_SHUTDOWN_TIMEOUT_S
    assert defaults("monitoring_agents")["monitoring_agents_dcgm_exporter_image"] == pins.image("dcgm-exporter")
    assert defaults("monitoring_agents")["monitoring_agents_dcgm_counters"] == dcgm_counters_csv()
    assert defaults("nvidia_driver")["nvidia_driver_branch"] == pins.DRIVER_BRANCH
    assert defaults("nccl")["nccl_version"] == pins.NCCL_VERSION
    assert defaults("nccl")["nccl_cuda_version"] == pins.CUDA_VERSION
    # Fabric manager: NVIDIA's per-branch package name, pinned by branch or driver release.
    fm_vars = defaults("nvidia_fabricmanager", "vars")
    branch = "{{ nvidia_fabricmanager_branch }}"
    assert fm_vars["nvidia_fabricmanager_package"] == pins.fabric_manager_package(branch)
    assert "nvidia_driver_branch" in defaults("nvidia_fabricmanager")["nvidia_fabricmanager_branch"]
    # The spec's defaults are the same pins.
    target = BaremetalTarget.model_fields
    assert target["driver_branch"].default == pins.DRIVER_BRANCH
    assert target["nccl_version"].default == pins.NCCL_VERSION
    assert target["cuda_version"].default == pins.CUDA_VERSION


def test_upgrade_releases_and_restores_the_fabric_manager_hold():
    """A held fabric manager pins the driver release: upgrade-driver.yml releases it before the
    driver changes and the role holds the matching release again."""
    import yaml

    (play,) = yaml.safe_load((REPO / "ansible/upgrade-driver.yml").read_text())
    unhold = [t for t in play["pre_tasks"] if t.get("ansible.builtin.include_role", {}).get("tasks_from") == "unhold"]
    assert unhold and unhold[0]["ansible.builtin.include_role"]["name"] == "nvidia_fabricmanager"
    roles = [r["role"] for r in play["roles"]]
    assert roles.index("nvidia_driver") < roles.index("nvidia_fabricmanager")
    fm = next(r for r in play["roles"] if r["role"] == "nvidia_fabricmanager")
    assert fm["vars"]["nvidia_fabricmanager_unhold_for_upgrade"] is True
    tasks = yaml.safe_load((REPO / "ansible/roles/nvidia_fabricmanager/tasks/main.yml").read_text())
    names = [t["name"] for t in tasks]
    assert names.index("NVIDIA fabric manager | Release the package hold for an upgrade") < \
        names.index("NVIDIA fabric manager | Install the release matching the driver") < \
        names.index("NVIDIA fabric manager | Hold the package")
    (release,) = yaml.safe_load((REPO / "ansible/roles/nvidia_fabricmanager/tasks/unhold.yml").read_text())
    assert release["ansible.builtin.dpkg_selections"]["selection"] == "install"

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

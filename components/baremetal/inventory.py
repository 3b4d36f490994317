"""Build the Ansible inventory and group variables for a bare-metal stack.

Variables carry role prefixes (`nvidia_driver_*`, `vllm_*` ...) so each role reads only its
own; vLLM arguments come from the shared builder, like every other tier.
"""

from __future__ import annotations

import yaml

from components.serving import probes, versions
from components.serving.vllm_args import VLLM_PORT, vllm_serve_args
from components.spec import ResolvedStack
from components.spec.model import BaremetalTarget

GROUPS = ("gpu_nodes", "inference", "k8s_workers", "nvswitch_nodes")


def inventory(stack: ResolvedStack) -> dict:
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    groups: dict[str, dict] = {g: {"hosts": {}} for g in GROUPS}
    for host in target.hosts:
        host_vars = {
            "ansible_host": host.address,
            "gpu_validation_expected_gpus": host.gpus,
            "vllm_models": host.models,
        }
        if host.gpus:
            groups["gpu_nodes"]["hosts"][host.name] = host_vars
        if "inference" in host.roles:
            groups["inference"]["hosts"][host.name] = host_vars if not host.gpus else {}
        if "k8s_worker" in host.roles:
            groups["k8s_workers"]["hosts"][host.name] = {} if host.gpus else host_vars
        if host.nvswitch:
            groups["nvswitch_nodes"]["hosts"][host.name] = {}
    return {"all": {"vars": {"ansible_user": target.ssh_user}, "children": groups}}


def group_vars(stack: ResolvedStack) -> dict:
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    return {
        "nvidia_driver_branch": target.driver_branch,
        "nvidia_driver_open_kernel_modules": target.open_kernel_modules,
        "nvidia_driver_allow_reboot": target.allow_reboot,
        "nccl_cuda_version": target.cuda_version,
        "nccl_version": target.nccl_version,
        "vllm_image": versions.VLLM_IMAGE,
        "vllm_port_base": VLLM_PORT,
        "vllm_shutdown_timeout_s": probes.VLLM_SHUTDOWN_TIMEOUT_S,
        "vllm_served_models": {
            m.name: {
                "args": vllm_serve_args(m, VLLM_PORT + i),
                "port": VLLM_PORT + i,
                "gpus": m.gpus_per_replica,
                "startup_budget_s": m.startup_budget_s,
            }
            for i, m in enumerate(stack.models)
        },
        # Secrets are never written here: the vLLM role reads them from Ansible Vault
        # variables (vllm_api_key, vllm_hf_token) at run time.
        "vllm_api_auth": stack.spec.security.api_auth,
    }


def files(stack: ResolvedStack) -> dict[str, str]:
    header = "# Rendered by tierscale from the stack spec; edit the stack, not this file.\n"
    return {
        "inventory.yml": header + yaml.safe_dump(inventory(stack), sort_keys=False),
        "group_vars/all/tierscale.yml": header + yaml.safe_dump(group_vars(stack), sort_keys=False),
    }

"""Build the Ansible inventory and group variables for a bare-metal stack.

`tierscale inventory --stack NAME` writes these files; `ansible-playbook -i <dir>/inventory.yml
ansible/site.yml` runs the roles with them. Variables carry role prefixes (`nvidia_driver_*`,
`vllm_*` ...) so each role reads only its own. vLLM arguments come from the shared builder and
the DCGM collector list from the shared metric list, like every other tier. Secrets are never
written here: `vllm_api_key` / `vllm_hf_token` live in Ansible Vault.
"""

from __future__ import annotations

import yaml

from components.observability.metrics import dcgm_counters_csv
from components.serving import probes, versions
from components.serving.vllm_args import VLLM_PORT, vllm_serve_args
from components.spec import ResolvedStack
from components.spec.model import BaremetalTarget

GROUPS = ("gpu_nodes", "inference", "k8s_workers", "nvswitch_nodes")
VLLM_VERSION = versions.VLLM_IMAGE.rsplit(":v", 1)[1]
# NCCL all_reduce_perf floor: 60% of the GPU's unidirectional intra-node link bandwidth. A
# healthy HGX H100 measures ~80% (≈360-480 GB/s of 450); 60% leaves room for tuning, and a
# broken NVLink or a PCIe fallback lands far below it.
BUSBW_FLOOR_FRACTION = 0.6


def min_busbw_gbps(stack: ResolvedStack) -> float:
    return round(BUSBW_FLOOR_FRACTION * stack.gpu.interconnect.bandwidth_gbs / 2, 1)


def inventory(stack: ResolvedStack) -> dict:
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    hosts = {}
    groups: dict[str, dict] = {g: {"hosts": {}} for g in GROUPS}
    for host in target.hosts:
        hosts[host.name] = {
            "ansible_host": host.address,
            "gpu_validation_expected_gpus": host.gpus,
            "vllm_models": list(host.models),
        }
        if host.gpus:
            groups["gpu_nodes"]["hosts"][host.name] = None
        if "inference" in host.roles:
            groups["inference"]["hosts"][host.name] = None
        if "k8s_worker" in host.roles:
            groups["k8s_workers"]["hosts"][host.name] = None
        if host.nvswitch:
            groups["nvswitch_nodes"]["hosts"][host.name] = None
    return {"all": {"hosts": hosts, "vars": {"ansible_user": target.ssh_user}, "children": groups}}


def group_vars(stack: ResolvedStack) -> dict:
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    return {
        "nvidia_driver_branch": target.driver_branch,
        "nvidia_driver_open_kernel_modules": target.open_kernel_modules,
        "nvidia_driver_allow_reboot": target.allow_reboot,
        "nccl_cuda_version": target.cuda_version,
        "nccl_version": target.nccl_version,
        "vllm_version": VLLM_VERSION,
        "vllm_image": versions.VLLM_IMAGE,
        "vllm_shutdown_timeout_s": probes.VLLM_SHUTDOWN_TIMEOUT_S,
        "vllm_api_auth": stack.spec.security.api_auth,
        # One port per model, so a host can serve several.
        "vllm_served_models": {
            m.name: {
                "args": vllm_serve_args(m, VLLM_PORT + i),
                "port": VLLM_PORT + i,
                "gpus": m.gpus_per_replica,
                "startup_budget_s": m.startup_budget_s,
            }
            for i, m in enumerate(stack.models)
        },
        "monitoring_agents_dcgm_exporter_image": versions.DCGM_EXPORTER_IMAGE,
        "monitoring_agents_dcgm_counters": dcgm_counters_csv(),
        "gpu_validation_min_busbw_gbps": min_busbw_gbps(stack),
    }


def files(stack: ResolvedStack) -> dict[str, str]:
    header = ("# Rendered by tierscale from the stack spec; edit the stack, not this file.\n"
              "# Secrets (vllm_api_key, vllm_hf_token) go in group_vars/all/vault.yml, encrypted with ansible-vault.\n")
    return {
        "inventory.yml": header + yaml.safe_dump(inventory(stack), sort_keys=False),
        "group_vars/all/tierscale.yml": header + yaml.safe_dump(group_vars(stack), sort_keys=False, width=200),
    }

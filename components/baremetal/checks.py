"""Bare-metal rules (host roles and names) and the validators for the rendered inventory.

Per-host GPU accounting (a replica on a host without room, the wrong GPU type, duplicate
names) is the placement step's (components.planner.placement), run by the spec's resolver.
"""

from __future__ import annotations

import ipaddress

from components import pins
from components.facts import gpu_catalog
from components.serving import versions
from components.spec import kubernetes_rules
from components.spec.errors import Problem
from components.spec.model import BaremetalTarget, StackSpec

# NVSwitch boards (HGX/DGX A100, H100, H200, B200) carry 8 SXM GPUs on one NVSwitch fabric and
# need the fabric manager before CUDA can use them: "On NVSwitch-based systems ... FM must be
# running before CUDA applications can run" (NVIDIA Fabric Manager User Guide, "Overview";
# without it CUDA reports error 802, "system not yet initialized"). PCIe cards (the catalog's
# `interconnect.kind: pcie*`: L4, L40S, A10G, RTX 4090) never sit on an NVSwitch; the catalog's
# NVLink types are the SXM parts whose per-GPU NVLink figure needs the switch.
NVSWITCH_BOARD_GPUS = 8
# "For cutting-edge platforms such as NVIDIA Grace Hopper or NVIDIA Blackwell, you must use the
# open-source GPU kernel modules. The proprietary drivers are unsupported on these platforms."
# (NVIDIA Technical Blog, "NVIDIA Transitions Fully Towards Open-Source GPU Kernel Modules",
# 2024-07-17). Blackwell is compute capability 10.x and up (the catalog's `compute_capability`).
OPEN_MODULES_FROM_CAPABILITY = 10
# The pinned vLLM image (components/pins.yaml images.vllm, v0.32.0) is the CUDA 13.0 build: since
# v0.20.0 the unsuffixed vllm/vllm-openai image is CUDA 13.0 (vllm-project/vllm#39878, "CUDA 13.0
# wheels and Docker images are now the unsuffixed default"). NVIDIA's data-center support matrix
# ("Supported Drivers and CUDA Toolkit Versions") gives R535 and R570 CUDA 12.x at most and R580
# CUDA 13.x, so every host that runs it needs branch 580 or newer (docs/vllm.md).
MIN_DRIVER_BRANCH = 580


def _address_key(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address.lower().rstrip(".")


def _address(i: int, host, hosts: int) -> list[Problem]:
    try:
        ip = ipaddress.ip_address(host.address)
    except ValueError:
        return []
    key = f"target.hosts[{i}].address"
    if ip.is_unspecified or ip.is_multicast:
        return [Problem(key, f"{host.address} is not a host's address (unspecified or multicast); give the address "
                        "Ansible reaches the host at")]
    if ip.is_loopback and hosts > 1:
        return [Problem(key, f"{host.address} is the loopback address, but the stack has {hosts} hosts: each would be "
                        "the machine Ansible runs on, and multi-node replicas reach each other at these addresses "
                        "(VLLM_HOST_IP); give every host its own reachable address")]
    return []


def problems(spec: StackSpec) -> list[Problem]:
    out: list[Problem] = kubernetes_rules.tls_outside_kubernetes(spec)
    target = spec.target
    if not isinstance(target, BaremetalTarget):
        return out
    if int(target.driver_branch) < MIN_DRIVER_BRANCH:
        out.append(Problem("target.driverBranch", (
            f"{target.driver_branch!r} is below R{MIN_DRIVER_BRANCH}: the pinned vLLM image ({versions.VLLM_IMAGE}) is "
            f"built with CUDA 13.0, which needs an NVIDIA driver of branch {MIN_DRIVER_BRANCH} or newer (R535/R570 run "
            f"CUDA 12.x only); allowed: \"{MIN_DRIVER_BRANCH}\" or a later branch (default \"{pins.DRIVER_BRANCH}\")")))
    catalog = gpu_catalog()
    addresses: dict[str, int] = {}
    if not target.open_kernel_modules:
        needs_open = sorted({h.gpu_type or spec.gpu.type for h in target.hosts if h.gpus
                             and int(catalog[h.gpu_type or spec.gpu.type].compute_capability.split(".")[0])
                             >= OPEN_MODULES_FROM_CAPABILITY})
        if needs_open:
            out.append(Problem("target.openKernelModules", (
                f"false, but {', '.join(needs_open)} (Blackwell) GPUs run only with NVIDIA's open kernel modules; the "
                "proprietary modules do not support them (NVIDIA, \"NVIDIA Transitions Fully Towards Open-Source GPU "
                "Kernel Modules\"): set openKernelModules: true")))
    for i, host in enumerate(target.hosts):
        where = f"target.hosts[{i}]"
        if host.models and "inference" not in host.roles:
            out.append(Problem(f"{where}.roles", f"{host.name} lists models but is not in the inference group "
                               "(the vLLM role runs only there): add 'inference' or remove its models"))
        out += _address(i, host, len(target.hosts))
        address = _address_key(host.address)
        if address in addresses:
            first = target.hosts[addresses[address]]
            out.append(Problem(f"{where}.address", (
                f"{host.address} is also hosts[{addresses[address]}] ({first.name})'s address: one machine would be "
                "counted twice (its GPUs given to two hosts' replicas, two sets of units on one GPU set); list each "
                "machine once")))
        addresses.setdefault(address, i)
        gpu_type = host.gpu_type or spec.gpu.type
        facts = catalog[gpu_type]
        pcie = facts.interconnect.kind.startswith("pcie")
        if host.gpus > facts.max_gpus_per_node:
            out.append(Problem(f"{where}.gpus", (
                f"{host.gpus} {gpu_type} GPUs in one host; servers carry at most {facts.max_gpus_per_node} "
                f"(components/facts/gpus.yaml max_gpus_per_node): list each machine as its own host")))
        if host.nvswitch:
            if host.gpus == 0:
                out.append(Problem(f"{where}.nvswitch", f"{host.name} has no GPUs; an NVSwitch board has "
                                   f"{NVSWITCH_BOARD_GPUS}"))
            elif pcie:
                out.append(Problem(f"{where}.nvswitch", (
                    f"{gpu_type} GPUs are PCIe cards ({facts.interconnect.kind}); NVSwitch boards (HGX/DGX) carry SXM "
                    "GPUs: set nvswitch: false (the fabric manager would be installed for a switch that is not there)")))
            elif host.gpus != NVSWITCH_BOARD_GPUS:
                out.append(Problem(f"{where}.nvswitch", (
                    f"{host.name} has {host.gpus} GPUs; an NVSwitch board (HGX/DGX) has {NVSWITCH_BOARD_GPUS} "
                    "(4-GPU HGX boards link their GPUs directly, without NVSwitch): set gpus: 8 or nvswitch: false")))
    return out


def risks(spec: StackSpec) -> list[Problem]:
    """Legal but likely wrong (warnings: `validate --strict` fails on them)."""
    out: list[Problem] = []
    if not isinstance(spec.target, BaremetalTarget):
        return out
    catalog = gpu_catalog()
    for i, host in enumerate(spec.target.hosts):
        gpu_type = host.gpu_type or spec.gpu.type
        facts = catalog[gpu_type]
        if not host.nvswitch and not facts.interconnect.kind.startswith("pcie") and host.gpus == NVSWITCH_BOARD_GPUS:
            out.append(Problem(f"target.hosts[{i}].nvswitch", (
                f"false, but {host.name} has {NVSWITCH_BOARD_GPUS} {gpu_type} GPUs ({facts.interconnect.kind}, "
                f"{facts.interconnect.bandwidth_gbs:g} GB/s per GPU): that is an HGX/DGX NVSwitch board, whose GPUs "
                "CUDA cannot use until the fabric manager runs (NVIDIA Fabric Manager User Guide); set nvswitch: true "
                "so the nvidia_fabricmanager role installs it")))
    return out


def validators(stack) -> list:
    from components.validate import registry as v

    return [v.ansible_inventory, v.ansible_syntax]

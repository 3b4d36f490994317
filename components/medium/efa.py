"""Elastic Fabric Adapter (EFA) for multi-node replicas on EKS.

Facts in components/facts/efa.yaml (instance type -> EFA interfaces, with sources). On EKS,
when some model spans nodes and the GPU node group's instance type has EFA:
  - the GPU node group is launched with EFA interfaces (components/medium/eks.py: a launch
    template with one EFA per network card, a cluster placement group, one AZ, and the
    all-traffic-within-itself security group EFA requires);
  - the aws-efa-k8s-device-plugin chart (pinned) advertises them as vpc.amazonaws.com/efa;
  - each pod of a multi-node model requests its node's share of them (requests = limits).
Anywhere else (other clouds, existing clusters, instance types without EFA) nothing is
rendered and NCCL uses TCP sockets on eth0 (NCCL_SOCKET_IFNAME).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Optional

import yaml

from components.spec import ResolvedModel, ResolvedStack
from components.spec.model import EksTarget

EFA_FACTS = Path(__file__).resolve().parents[1] / "facts" / "efa.yaml"


@cache
def facts() -> dict:
    return yaml.safe_load(EFA_FACTS.read_text())


def interfaces(instance_type: str) -> int:
    """EFA interfaces of an instance type (0: no EFA, or not in the facts)."""
    return int(facts()["instances"].get(instance_type, {}).get("efa_interfaces", 0))


def node_interfaces(stack: ResolvedStack) -> int:
    """EFA interfaces each GPU node gets: only on a new EKS cluster whose GPU instance type has
    EFA and when some model spans nodes (single-node models never leave NVLink)."""
    target = stack.spec.target
    if not isinstance(target, EksTarget) or not any(m.multi_node for m in stack.models):
        return 0
    return interfaces(target.gpu_node_group.instance_type)


def per_pod(model: ResolvedModel, stack: ResolvedStack) -> Optional[int]:
    """vpc.amazonaws.com/efa one pod of `model` requests: the node's interfaces in proportion to
    the GPUs the pod takes (all of them for a whole node). None: no EFA for this model."""
    total = node_interfaces(stack)
    if not total or not model.multi_node:
        return None
    return max(1, total * model.gpus_per_node // stack.spec.gpu.per_node)


def unknown_values_keys(values: dict) -> list[str]:
    """Keys in the device plugin's values that its pinned values.yaml does not have."""
    entry = facts()["chart_values_keys"]
    exact = {k for k in entry["keys"] if not k.endswith(".*")}
    open_ = tuple(k[:-2] for k in entry["keys"] if k.endswith(".*"))

    def leaves(node, prefix=""):
        if isinstance(node, dict) and node:
            return [p for k, v in node.items() for p in leaves(v, f"{prefix}{k}.")]
        return [prefix.rstrip(".")]

    return [p for p in leaves(values)
            if p not in exact and p not in open_ and not p.startswith(tuple(f"{o}." for o in open_))]

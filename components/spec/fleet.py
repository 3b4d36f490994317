"""The stack's fleet for the placement step: which nodes (with their GPU type and count) exist.

small: the one Docker host; kubernetes: `gpuNodes` nodes of `gpu.perNode`; eks: the GPU node
group at `maxSize` (what the autoscaler can reach); baremetal: every host with its own
`gpuType` (default `gpu.type`) and the models it lists; large (multi-region): every region's
GPU nodes.

Failure domains (`Node.zone`; placement spreads a model's replicas across zones first, then
nodes): large: the region (one regional outage takes all its nodes); eks: the availability
zone, where it is known (`eks_zones`); existing clusters and bare-metal hosts: unknown (None),
so placement spreads by node only.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from components.planner import placement
from components.spec.model import BaremetalTarget, DockerHostTarget, EksTarget, KubernetesTarget, MultiRegionTarget, StackSpec
from components.spec.resolved import ResolvedModel


def eks_zones(target: EksTarget, nodes: int, models: Optional[Sequence[ResolvedModel]]) -> list[Optional[str]]:
    """The availability zone of each GPU node of a new EKS cluster (labels `<region>-az<i>`: the
    real names come from `aws.get_availability_zones` at deploy time, components/medium/eks.py).

    The GPU node group gets one private subnet per AZ (`availabilityZones`), and its Auto
    Scaling group keeps the instances balanced across them ("Amazon EC2 Auto Scaling attempts to
    distribute instances evenly between the Availability Zones that are enabled", EC2 Auto
    Scaling user guide, "Auto Scaling benefits for application architecture"), so node i is in
    AZ i mod n. With EFA (a multi-node model on an instance type with EFA,
    components/medium/efa.py) the group is in one cluster placement group, one subnet: one AZ.
    Before the models resolve (`models` None) that is not known when the type has EFA: None."""
    from components.medium import efa

    azs = target.availability_zones
    if efa.interfaces(target.gpu_node_group.instance_type):
        if models is None:
            return [None] * nodes
        if any(m.multi_node for m in models):
            azs = 1
    return [f"{target.region}-az{n % azs + 1}" for n in range(nodes)]


def fleet_for(spec: StackSpec, models: Optional[Sequence[ResolvedModel]] = None) -> placement.Fleet:
    """The nodes placement may use: the `fleet` role of the tier that accepts `target.kind` (by
    the target, not `tier`, so a stack whose tier and target disagree still gets its target's
    nodes while rules.py reports the mismatch). `models` (the resolved models, when known) only
    refines the failure domains (`eks_zones`), never the nodes or their GPUs."""
    from components.tiers import tier_of_target

    return tier_of_target(spec.target.kind).function("fleet")(spec, models)


def small_fleet(spec: StackSpec, models: Optional[Sequence[ResolvedModel]] = None) -> placement.Fleet:
    """The one Docker host."""
    target = spec.target
    assert isinstance(target, DockerHostTarget)
    fleet = placement.small_host(spec.gpu.type, spec.gpu.per_node, target.gpu_device_ids, name=target.host,
                                 where="target")
    return placement.Fleet(fleet.nodes, tier="small")


def medium_fleet(spec: StackSpec, models: Optional[Sequence[ResolvedModel]] = None) -> placement.Fleet:
    """An existing cluster's `gpuNodes`, or the new EKS GPU node group at `maxSize` with its AZs."""
    target = spec.target
    if isinstance(target, KubernetesTarget):
        pool = placement.NodePool("gpu", spec.gpu.type, spec.gpu.per_node, target.gpu_nodes, where="target.gpuNodes")
        return placement.Fleet(placement.kubernetes_fleet([pool]).nodes, tier="medium")
    assert isinstance(target, EksTarget)
    pool = placement.NodePool("gpu", spec.gpu.type, spec.gpu.per_node, target.gpu_node_group.max_size,
                              where="target.gpuNodeGroup.maxSize")
    nodes = placement.kubernetes_fleet([pool]).nodes
    zones = eks_zones(target, len(nodes), models)
    return placement.Fleet(tuple(dataclasses.replace(n, zone=z) for n, z in zip(nodes, zones)), tier="medium")


def baremetal_fleet(spec: StackSpec, models: Optional[Sequence[ResolvedModel]] = None) -> placement.Fleet:
    """Every host with its own `gpuType` (default `gpu.type`) and the models it lists."""
    target = spec.target
    assert isinstance(target, BaremetalTarget)
    hosts = [placement.baremetal_host(h.name, h.gpu_type or spec.gpu.type, h.gpus, h.models,
                                      where=f"target.hosts[{i}]")
             for i, h in enumerate(target.hosts)]
    return placement.Fleet(tuple(placement.baremetal_fleet(hosts).nodes), tier="baremetal")


def large_fleet(spec: StackSpec, models: Optional[Sequence[ResolvedModel]] = None) -> placement.Fleet:
    """Every region's GPU nodes (`gpuNodes`: the Karpenter limit or the cluster's nodes). This
    places the planner's total; components/large/checks.py places each region's own replicas on
    its own nodes. Each region is a failure domain: its name is its nodes' zone."""
    target = spec.target
    assert isinstance(target, MultiRegionTarget)
    nodes = [placement.Node(f"{r.name}-gpu-{n}", spec.gpu.type, spec.gpu.per_node, pool=f"{r.name}-gpu",
                            where=f"target.regions[{i}].gpuNodes", zone=r.name)
             for i, r in enumerate(target.regions) for n in range(r.gpu_nodes)]
    return placement.Fleet(tuple(nodes), tier="large")


def total_gpus(fleet: placement.Fleet) -> int:
    """GPUs the placement may use."""
    return sum(node.capacity for node in fleet.nodes)
